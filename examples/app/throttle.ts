// Password guessing is slowed down per (account, client address) pair and per
// client address. Only the pair counts towards an account: an attacker who
// fails at an account from one address slows down themselves, never its owner
// at another. The address's looser budget, across every account, limits
// trying one common password on many accounts; sign-ups, which hash a
// password too, count against it. A browser that signed in to the account
// before and shows its device cookie (./device-cookie.ts) is counted on its
// own instead, so none of those can lock it out. The state lives in the
// database, so several processes of the app share it.
import { createHash } from "node:crypto"
import { and, eq, inArray, lt, sql } from "drizzle-orm"
import { index, integer, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core"
import { Clock, Effect, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { db_query } from "effect-session-repo"
import ipaddr from "ipaddr.js"
import { client_address } from "./client-address.ts"
import { trusted_device } from "./device-cookie.ts"

/**
 * Attempts counted without a wait. From the last of them on, the next attempt
 * waits 1 s after it, and each further one twice as long after the one
 * before, up to 15 min.
 */
const FAILURES_BEFORE_WAITING = { per_pair: 5, per_address: 50 }
const FIRST_WAIT_MS = 1000
const MAX_WAIT_MS = 15 * 60 * 1000
/** A count is forgotten this long after its last attempt: longer than `MAX_WAIT_MS`, so retrying after each wait keeps it. */
const FORGET_AFTER_MS = 60 * 60 * 1000

/** In `account`, the row counting the address's attempts at every account. */
const EVERY_ACCOUNT = "*"

/**
 * Attempts, counted before the password is checked: per (account, address)
 * pair, the failed ones since the last success; per address (`account` =
 * "*"), the failed ones at every account, and sign-ups; per (account, trusted
 * device), with `address` = "device:" and the device id, like a pair.
 * `last_failure_at` is the time of the last attempt counted.
 */
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

export const create_throttle_table = Effect.andThen(
  db_query("create_throttle_table", (db) =>
    db.execute(sql`
      CREATE TABLE IF NOT EXISTS example_password_throttle (
        account text NOT NULL,
        address text NOT NULL,
        failures integer NOT NULL,
        last_failure_at timestamptz NOT NULL,
        PRIMARY KEY (account, address)
      )`),
  ),
  db_query("create_throttle_table", (db) =>
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

// The pieces of SQL the reservation and the refusal share; the constants are ours, not input.
const ms = (value: number) => sql.raw(`interval '${value} milliseconds'`)
const { account: row_account, failures, last_failure_at } = password_throttle
const free_attempts = sql`CASE WHEN ${row_account} = ${EVERY_ACCOUNT}
  THEN ${sql.raw(String(FAILURES_BEFORE_WAITING.per_address))}
  ELSE ${sql.raw(String(FAILURES_BEFORE_WAITING.per_pair))} END`
// 2^10 s is past MAX_WAIT_MS already: the cap keeps a long siege from overflowing the double
const LONGEST_DOUBLING = Math.ceil(Math.log2(MAX_WAIT_MS / FIRST_WAIT_MS))
/** Once a row's free attempts are used: when its wait after the last attempt ends. */
const wait_ends_at = sql`${last_failure_at} + least(
  ${ms(FIRST_WAIT_MS)} * power(2, least(${failures} - ${free_attempts}, ${sql.raw(String(LONGEST_DOUBLING))})),
  ${ms(MAX_WAIT_MS)})`
/** In an upsert: the row's count is older than FORGET_AFTER_MS, so it starts again. */
const forgotten = sql`${last_failure_at} < excluded.last_failure_at - ${ms(FORGET_AFTER_MS)}`

const key = (account: string, address: string) =>
  and(eq(password_throttle.account, account), eq(password_throttle.address, address))

/**
 * Takes one attempt from the row's count before the attempt is made, or
 * fails with `TooManyAttempts` when the row is in a wait. One statement: the
 * upsert locks the row, so concurrent attempts go through one at a time and
 * exactly the free attempts get through a burst. Checking first and counting
 * after the password check would let a whole burst through the check.
 */
const reserve = (account: string, address: string, now: Date) =>
  Effect.gen(function* () {
    const reserved = yield* db_query("throttle_reserve", (db) =>
      db
        .insert(password_throttle)
        .values({ account, address, failures: 1, last_failure_at: now })
        .onConflictDoUpdate({
          target: [password_throttle.account, password_throttle.address],
          set: {
            failures: sql`CASE WHEN ${forgotten} THEN 1 ELSE ${failures} + 1 END`,
            // requests arrive out of order: the time never goes back
            last_failure_at: sql`greatest(${last_failure_at}, excluded.last_failure_at)`,
          },
          // No row returned: the row is in a wait, and is left as it was. Within
          // the free attempts the time is not compared: concurrent requests
          // read the clock in one order and reach the row in another.
          setWhere: sql`${failures} < ${free_attempts} OR ${wait_ends_at} <= excluded.last_failure_at
            OR ${forgotten}`,
        })
        .returning({ failures }),
    )
    const [row] = reserved
    if (row === undefined) return yield* refuse(account, address, now)
    // a new count, so the table grows: a few forgotten ones go
    if (row.failures === 1) yield* delete_forgotten(now)
  })

const refuse = (account: string, address: string, now: Date) =>
  Effect.gen(function* () {
    const [row] = yield* db_query("throttle_refuse", (db) =>
      db
        .select({ at: sql`extract(epoch from ${wait_ends_at}) * 1000`.mapWith(Number) })
        .from(password_throttle)
        .where(key(account, address)),
    )
    // at least 1 s: the row may have changed since it refused
    const seconds = Math.ceil(((row?.at ?? 0) - now.getTime()) / 1000)
    return yield* new TooManyAttempts({ retry_after_seconds: Math.max(1, seconds) })
  })

/** An attempt reserved from the address's row that was no guess: its count goes back (its time stays). */
const give_back = (address: string) =>
  db_query("throttle_give_back", (db) =>
    db
      .update(password_throttle)
      .set({ failures: sql`greatest(${failures} - 1, 0)` })
      .where(key(EVERY_ACCOUNT, address)),
  )

/** The client's address as counted, and the attempt's time. */
const attempt_now = Effect.gen(function* () {
  const address = address_key(yield* client_address)
  return { address, now: new Date(yield* Clock.currentTimeMillis) }
})

const forget = (account: string, address: string) =>
  db_query("throttle_forget", (db) => db.delete(password_throttle).where(key(account, address)))

/**
 * Runs `check` (a password verification) unless the account or the client's
 * address has failed too often lately: then fails with `TooManyAttempts`
 * before any hash is computed. The attempt is counted for the address, then
 * for the pair, before `check` runs, and a failure stays counted. A success
 * clears the pair's count and gives the address its attempt back: an office
 * behind one address logs in all day. (It does not clear the address's count:
 * a login to the attacker's own account must not buy more guesses.) From a
 * device trusted for the account, the attempt counts for that device alone.
 */
export const throttle_password_check = <E, R>(account: string, check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function* () {
    const device = yield* trusted_device(account)
    if (device !== undefined) return yield* throttle_device_check(account, `device:${device}`, check)
    const { address, now } = yield* attempt_now
    yield* reserve(EVERY_ACCOUNT, address, now)
    // refused for the pair: the attempt is not made, so it costs the address nothing
    yield* Effect.tapError(reserve(account, address, now), () => give_back(address))
    const passed = yield* check
    if (passed) {
      yield* forget(account, address)
      yield* give_back(address)
    }
    return passed
  })

/** An attempt from a device trusted for the account: counted, and cleared by a success, like a pair. */
const throttle_device_check = <E, R>(account: string, device: string, check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function* () {
    yield* reserve(account, device, new Date(yield* Clock.currentTimeMillis))
    const passed = yield* check
    if (passed) yield* forget(account, device)
    return passed
  })

/**
 * Counts a sign-up against the client's address, or fails with
 * `TooManyAttempts` before its password is hashed. Counted even when the
 * sign-up succeeds: each one costs a hash and makes an account, and a flood
 * of them with fresh names succeeds every time.
 */
export const throttle_signup = Effect.gen(function* () {
  const { address, now } = yield* attempt_now
  yield* reserve(EVERY_ACCOUNT, address, now)
})

// Opportunistic cleanup at each new count, so the table does not grow forever.
// A few rows at a time, and never waiting for a row another request holds.
const delete_forgotten = (now: Date) =>
  db_query("throttle_delete_forgotten", (db) =>
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
