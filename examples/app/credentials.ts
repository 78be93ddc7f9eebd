import { randomBytes, scrypt, timingSafeEqual } from "node:crypto"
import { eq, sql } from "drizzle-orm"
import { pgTable, text, uuid } from "drizzle-orm/pg-core"
import { Effect } from "effect"
import { account, Db, DbError } from "effect-session-repo"

/** The example's own table: passwords are the app's business, not the session layer's. */
export const credential = pgTable("example_credential", {
  account_id: uuid()
    .primaryKey()
    .references(() => account.id, { onDelete: "cascade" }),
  password_hash: text().notNull(),
})

export const create_credential_table = Db.use((db) =>
  Effect.tryPromise({
    try: () =>
      db.execute(sql`
        CREATE TABLE IF NOT EXISTS example_credential (
          account_id uuid PRIMARY KEY REFERENCES account(id) ON DELETE CASCADE,
          password_hash text NOT NULL
        )`),
    catch: (error) => DbError.from("create_credential_table", error),
  }),
)

// scrypt parameters (N = 2^14, r = 8, p = 1): about 16 MiB and tens of ms per hash.
const N = 16384
const R = 8
const P = 1
const KEY_LENGTH = 64

const derive = (password: string, salt: Buffer) =>
  Effect.callback<Buffer>((resume) => {
    scrypt(password, salt, KEY_LENGTH, { N, r: R, p: P, maxmem: 64 * 1024 * 1024 }, (error, key) =>
      resume(error ? Effect.die(error) : Effect.succeed(key)),
    )
  })

/** `scrypt$<salt>$<key>`, both base64url. */
export const hash_password = (password: string) =>
  Effect.gen(function* () {
    const salt = randomBytes(16)
    const key = yield* derive(password, salt)
    return `scrypt$${salt.toString("base64url")}$${key.toString("base64url")}`
  })

// Verifying against this when the account does not exist keeps the timing the same.
const DUMMY_HASH = `scrypt$${Buffer.alloc(16).toString("base64url")}$${Buffer.alloc(KEY_LENGTH).toString("base64url")}`

/** Constant-time comparison of `password` with a stored hash (or the dummy one). */
export const verify_password = (password: string, stored: string | undefined) =>
  Effect.gen(function* () {
    const [scheme, salt, key] = (stored ?? DUMMY_HASH).split("$")
    if (scheme !== "scrypt" || salt === undefined || key === undefined) return false
    const expected = Buffer.from(key, "base64url")
    const actual = yield* derive(password, Buffer.from(salt, "base64url"))
    return timingSafeEqual(actual, expected) && stored !== undefined
  })

export const find_credential = (username: string) =>
  Db.use((db) =>
    Effect.tryPromise({
      try: () =>
        db
          .select({
            account_id: account.id,
            username: account.username,
            password_hash: credential.password_hash,
          })
          .from(account)
          .innerJoin(credential, eq(credential.account_id, account.id))
          .where(eq(sql`lower(${account.username})`, username.toLowerCase())),
      catch: (error) => DbError.from("find_credential", error),
    }),
  ).pipe(Effect.map((rows) => rows[0]))

export const find_password_hash = (account_id: string) =>
  Db.use((db) =>
    Effect.tryPromise({
      try: () => db.select().from(credential).where(eq(credential.account_id, account_id)),
      catch: (error) => DbError.from("find_password_hash", error),
    }),
  ).pipe(Effect.map((rows) => rows[0]?.password_hash))

/**
 * The stored hash, row-locked for the rest of the transaction: `share` to log
 * in (a password change waits), `update` to change it (logins wait).
 */
export const lock_password_hash = (account_id: string, mode: "share" | "update") =>
  Db.use((db) =>
    Effect.tryPromise({
      try: () =>
        db
          .select({ password_hash: credential.password_hash })
          .from(credential)
          .where(eq(credential.account_id, account_id))
          .for(mode),
      catch: (error) => DbError.from("lock_password_hash", error),
    }),
  ).pipe(Effect.map((rows) => rows[0]?.password_hash))
