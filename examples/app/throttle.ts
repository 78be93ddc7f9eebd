// Password guessing is slowed down per (account, client address) pair and per
// client address. Only the pair counts towards an account: an attacker who
// fails at an account from one address slows down themselves, never its owner
// at another. The address's looser budget, across every account, limits
// trying one common password on many accounts. The state lives in the
// database, so several processes of the app share it.
import { createHash } from "node:crypto"
import { and, eq, inArray, lt, sql } from "drizzle-orm"
import { index, integer, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core"
import { Clock, Effect, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { Db, DbError } from "effect-session-repo"
import ipaddr from "ipaddr.js"
import { client_address } from "./client-address.ts"

/** Failures without a wait; from the last of them on, each failure brings a wait: 1 s, doubling, up to 15 min. */
const FAILURES_BEFORE_WAITING = { per_pair: 5, per_address: 50 }
const FIRST_WAIT_MS = 1000
const MAX_WAIT_MS = 15 * 60 * 1000
/** A count is forgotten this long after its last failure: longer than `MAX_WAIT_MS`, so retrying after each wait keeps it. */
const FORGET_AFTER_MS = 60 * 60 * 1000

/** In `account`, the row counting the address's failures at every account. */
const EVERY_ACCOUNT = "*"

/** Failed password checks: per (account, address) pair, and per address (`account` = "*"). */
export const password_throttle = pgTable(
  "example_password_throttle",
  {
    // an account id, or `unknown_account` of the name tried
    account: text().notNull(),
    address: text().notNull(),
    failures: integer().notNull(),
    last_failure_at: timestamp({ withTimezone: true }).notNull(),
  },
  (table) => [primaryKey({ columns: [table.account, table.address] }), index().on(table.last_failure_at)],
)

const run = <A>(operation: string, f: (db: Db["Service"]) => Promise<A>) =>
  Db.use((db) => Effect.tryPromise({ try: () => f(db), catch: (error) => DbError.from(operation, error) }))

export const create_throttle_table = Effect.andThen(
  run("create_throttle_table", (db) =>
    db.execute(sql`
      CREATE TABLE IF NOT EXISTS example_password_throttle (
        account text NOT NULL,
        address text NOT NULL,
        failures integer NOT NULL,
        last_failure_at timestamptz NOT NULL,
        PRIMARY KEY (account, address)
      )`),
  ),
  run("create_throttle_table", (db) =>
    db.execute(sql`
      CREATE INDEX IF NOT EXISTS example_password_throttle_last_failure_at_index
        ON example_password_throttle (last_failure_at)`),
  ),
)

/** The attempt was refused before the password was checked. */
export class TooManyAttempts extends Schema.TaggedError<TooManyAttempts>()("TooManyAttempts", {
  retry_after_seconds: Schema.Number,
}) {}

/** 429 with `Retry-After` and a JSON `{ error }`, like the app's other refusals. */
export const answer_too_many_attempts = <A, E, R>(handler: Effect.Effect<A, E | TooManyAttempts, R>) =>
  Effect.catchIf(handler, Schema.is(TooManyAttempts), (refused) =>
    Effect.succeed(
      HttpServerResponse.jsonUnsafe(
        { error: `too many failed attempts; try again in ${refused.retry_after_seconds} s` },
        { status: 429, headers: { "retry-after": String(refused.retry_after_seconds) } },
      ),
    ),
  )

/**
 * The `account` a login to a name no account has is counted under: so a 429
 * says nothing about which names exist. A digest, not the name: a user who
 * typed the password into the name field must not find it stored (nor can
 * PostgreSQL text hold the NUL a name might contain).
 */
export const unknown_account = (username: string) =>
  `name:${createHash("sha256").update(username.toLowerCase()).digest("hex").slice(0, 32)}`

// An IPv6 client usually has a whole /64 to pick addresses from: it counts as one.
const address_key = (ip: string | undefined): string => {
  if (ip === undefined) return "unknown"
  const address = ipaddr.process(ip)
  if (address.kind() === "ipv4") return address.toString()
  const bytes = address.toByteArray().fill(0, 8)
  return `${(ipaddr.fromByteArray(bytes) as ipaddr.IPv6).toRFC5952String()}/64`
}

const wait_ms = (failures: number, allowed: number) =>
  failures < allowed ? 0 : Math.min(FIRST_WAIT_MS * 2 ** (failures - allowed), MAX_WAIT_MS)

/**
 * Runs `check` (a password verification) unless the account or the client's
 * address has failed too often lately: then fails with `TooManyAttempts`
 * before any hash is computed. A failed check is counted for the pair and the
 * address; a successful one clears the pair's count (not the address's: a
 * login to the attacker's own account must not buy more guesses).
 */
export const throttle_password_check = <E, R>(account: string, check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function* () {
    const address = address_key(yield* client_address)
    const now = yield* Clock.currentTimeMillis
    const rows = yield* run("throttle_password_check", (db) =>
      db
        .select()
        .from(password_throttle)
        .where(
          and(
            eq(password_throttle.address, address),
            inArray(password_throttle.account, [account, EVERY_ACCOUNT]),
          ),
        ),
    )
    const allowed = (row: typeof password_throttle.$inferSelect) =>
      row.account === EVERY_ACCOUNT ? FAILURES_BEFORE_WAITING.per_address : FAILURES_BEFORE_WAITING.per_pair
    const retry_at = Math.max(
      0,
      ...rows.map((row) => row.last_failure_at.getTime() + wait_ms(row.failures, allowed(row))),
    )
    if (retry_at > now) {
      return yield* new TooManyAttempts({ retry_after_seconds: Math.ceil((retry_at - now) / 1000) })
    }
    const passed = yield* check
    if (passed) yield* forget_pair(account, address)
    else yield* count_failure(account, address, new Date(yield* Clock.currentTimeMillis))
    return passed
  })

const forget_pair = (account: string, address: string) =>
  run("throttle_forget_pair", (db) =>
    db
      .delete(password_throttle)
      .where(and(eq(password_throttle.account, account), eq(password_throttle.address, address))),
  )

// One statement for both counts, each row updated in place under its lock, so
// concurrent failures are all counted. A count older than FORGET_AFTER_MS
// starts again at 1.
const count_failure = (account: string, address: string, now: Date) =>
  Effect.andThen(
    run("throttle_count_failure", (db) =>
      db
        .insert(password_throttle)
        .values([
          { account, address, failures: 1, last_failure_at: now },
          { account: EVERY_ACCOUNT, address, failures: 1, last_failure_at: now },
        ])
        .onConflictDoUpdate({
          target: [password_throttle.account, password_throttle.address],
          set: {
            failures: sql`CASE
              WHEN ${password_throttle.last_failure_at} < excluded.last_failure_at - ${sql.raw(`interval '${FORGET_AFTER_MS} milliseconds'`)}
              THEN 1 ELSE ${password_throttle.failures} + 1 END`,
            // requests finish out of order: the time never goes back
            last_failure_at: sql`greatest(${password_throttle.last_failure_at}, excluded.last_failure_at)`,
          },
        }),
    ),
    delete_forgotten(now),
  )

// Opportunistic cleanup at each failure, so the table does not grow forever.
// A few rows at a time, and never waiting for a row another request holds.
const delete_forgotten = (now: Date) =>
  run("throttle_delete_forgotten", (db) =>
    db.delete(password_throttle).where(
      inArray(
        sql`(${password_throttle.account}, ${password_throttle.address})`,
        db
          .select({ account: password_throttle.account, address: password_throttle.address })
          .from(password_throttle)
          .where(lt(password_throttle.last_failure_at, new Date(now.getTime() - FORGET_AFTER_MS)))
          .limit(100)
          .for("update", { skipLocked: true }),
      ),
    ),
  )
