import { randomBytes, scrypt, timingSafeEqual } from "node:crypto"
import * as argon2 from "@node-rs/argon2"
import { and, eq, sql } from "drizzle-orm"
import { pgTable, text, uuid } from "drizzle-orm/pg-core"
import { Effect } from "effect"
import { account, db_query } from "effect-session-repo"

/** The example's own table: passwords are the app's business, not the session layer's. */
export const credential = pgTable("example_credential", {
  account_id: uuid()
    .primaryKey()
    .references(() => account.id, { onDelete: "cascade" }),
  password_hash: text().notNull(),
})

export const create_credential_table = db_query("create_credential_table", (db) =>
  db.execute(sql`
        CREATE TABLE IF NOT EXISTS example_credential (
          account_id uuid PRIMARY KEY REFERENCES account(id) ON DELETE CASCADE,
          password_hash text NOT NULL
        )`),
)

// OWASP Password Storage Cheat Sheet: "Use Argon2id with a minimum configuration
// of 19 MiB of memory, an iteration count of 2, and 1 degree of parallelism"
// (https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html).
// A hash stored with other parameters is replaced at the next login.
const ARGON2 = {
  algorithm: 2, // Algorithm.Argon2id: a const enum, which the package does not export at run time
  memoryCost: 19456, // KiB: 19 MiB
  timeCost: 2,
  parallelism: 1,
  version: 1, // Version.V0x13, likewise
} satisfies argon2.Options

// Unicode has two forms of "é" (one code point, or "e" and a combining accent)
// and keyboards differ in which they send: hash one form, the composed one.
const normalized = (password: string) => password.normalize("NFC")

// The package hashes on libuv's thread pool: the event loop keeps serving meanwhile.
export const hash_password = (password: string) =>
  Effect.promise(() => argon2.hash(normalized(password), ARGON2))

// Verifying against this when the account does not exist keeps the timing the
// same as a wrong password. Hashed once, at start.
const dummy_hash = argon2.hash(randomBytes(32), ARGON2)

/**
 * Whether `password` is the one `stored` was made from (the dummy hash when
 * there is no account: false, after the same work). The comparison is the
 * package's, in constant time.
 */
export const verify_password = (password: string, stored: string | undefined) =>
  Effect.gen(function* () {
    if (stored?.startsWith("scrypt$")) return yield* verify_legacy_scrypt(password, stored)
    const hash = stored ?? (yield* Effect.promise(() => dummy_hash))
    // a malformed stored hash makes the package throw: that is a wrong password, not a crash
    const valid = yield* Effect.promise(() => argon2.verify(hash, normalized(password)).catch(() => false))
    return valid && stored !== undefined
  })

// made otherwise than `hash_password` does today
const is_outdated = (stored: string): boolean => {
  if (!stored.startsWith("$argon2")) return true
  const { algorithm, version, memoryCost, timeCost, parallelism } = argon2.parseOptions(stored)
  return (
    algorithm !== ARGON2.algorithm ||
    version !== ARGON2.version ||
    memoryCost !== ARGON2.memoryCost ||
    timeCost !== ARGON2.timeCost ||
    parallelism !== ARGON2.parallelism
  )
}

/**
 * Once `password` is verified against `stored`: replaces a hash made with
 * older parameters (or the old scrypt) with one made as today. Only if the
 * stored hash is still `stored`: a password change meanwhile wins. A database
 * failure is only logged: the login has succeeded, and the next one retries.
 */
export const upgrade_password_hash = (account_id: string, password: string, stored: string) =>
  Effect.gen(function* () {
    if (!is_outdated(stored)) return
    const upgraded = yield* hash_password(password)
    yield* db_query("upgrade_password_hash", (db) =>
      db
        .update(credential)
        .set({ password_hash: upgraded })
        .where(and(eq(credential.account_id, account_id), eq(credential.password_hash, stored))),
    )
  }).pipe(Effect.catchTag("DbError", (error) => Effect.logWarning("password hash not upgraded", error)))

// Earlier versions of this example stored `scrypt$<salt>$<key>` (N = 2^14,
// r = 8, p = 1, both base64url), below OWASP's minimum. Kept only to verify
// those hashes once, at a login that then replaces them. They were made from
// the password as sent, not normalized.
const verify_legacy_scrypt = (password: string, stored: string) =>
  Effect.callback<boolean>((resume) => {
    const [, salt = "", key = ""] = stored.split("$")
    const expected = Buffer.from(key, "base64url")
    const options = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }
    scrypt(password, Buffer.from(salt, "base64url"), 64, options, (error, actual) =>
      resume(
        error
          ? Effect.die(error)
          : Effect.succeed(actual.length === expected.length && timingSafeEqual(actual, expected)),
      ),
    )
  })

export const find_credential = (username: string) =>
  db_query("find_credential", (db) =>
    db
      .select({
        account_id: account.id,
        username: account.username,
        password_hash: credential.password_hash,
      })
      .from(account)
      .innerJoin(credential, eq(credential.account_id, account.id))
      .where(eq(sql`lower(${account.username})`, username.toLowerCase())),
  ).pipe(Effect.map((rows) => rows[0]))

export const find_password_hash = (account_id: string) =>
  db_query("find_password_hash", (db) =>
    db.select().from(credential).where(eq(credential.account_id, account_id)),
  ).pipe(Effect.map((rows) => rows[0]?.password_hash))

/**
 * The stored hash, row-locked for the rest of the transaction: `share` to log
 * in (a password change waits), `update` to change it (logins wait).
 */
export const lock_password_hash = (account_id: string, mode: "share" | "update") =>
  db_query("lock_password_hash", (db) =>
    db
      .select({ password_hash: credential.password_hash })
      .from(credential)
      .where(eq(credential.account_id, account_id))
      .for(mode),
  ).pipe(Effect.map((rows) => rows[0]?.password_hash))
