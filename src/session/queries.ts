import { Clock, Effect } from "effect"
import type { DbError } from "../db/errors.js"
import { type Db, Tx } from "../db/handle.js"
import type { AccountId, AuthSession, AuthSessionWithUsername } from "../schema/session-table.js"
import { AccountNotFound, type InvalidInput } from "./errors.js"
import {
  require_account_id,
  require_date,
  require_int_in_range,
  require_list_limit,
  require_max_sessions,
  require_token_hash,
} from "./input.js"
import { SessionPolicy } from "./policy.js"
import { SessionSchema } from "./session-schema.js"
import { session_statements } from "./statements.js"

// The specification's query functions as Effects. Each requires `Db` (the pool
// or the current transaction); `query_session_enforce_limit` also requires `Tx`.
// `now` always comes from Effect's Clock. Each opens a span named after it,
// except `query_session_get_valid`: it runs on every request, and a span costs
// it about a tenth of its throughput (npm run bench:layers measures it; npm
// run bench:overhead puts a span at about 5 µs of client CPU).
// SessionRepo.create_session opens one span for its transaction and calls the
// untraced bodies inside, instead of three nested spans.

const current_date = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))

/** The statements of the session table in use (`SessionSchema`). */
const statements = Effect.map(SessionSchema, session_statements)

/** An account id checked against the kind of the account key column in use. */
const checked_account_id = (value: unknown) =>
  Effect.flatMap(SessionSchema, (schema) => require_account_id(schema, value))

/** `query_create_session` without its span, for callers that open their own. */
export const create_session_untraced = Effect.fnUntraced(function* (
  token_hash: string,
  account_id: AccountId,
  expires_at: Date,
): Effect.fn.Return<AuthSession, InvalidInput | AccountNotFound | DbError, Db> {
  const { insert_session } = yield* statements
  const id = yield* require_token_hash(token_hash)
  const owner = yield* checked_account_id(account_id)
  const expiry = yield* require_date("expires_at", expires_at)
  const now = yield* current_date
  const rows = yield* insert_session({ id, account_id: owner, now, expires_at: expiry }).pipe(
    Effect.catchIf(
      (error) => error.reason === "foreign_key_violation",
      () =>
        // the id stays out of the message: a text key may be an email
        Effect.fail(new AccountNotFound({ account_id: owner, message: "the account does not exist" })),
    ),
  )
  return rows[0] as AuthSession
})

/** Inserts a session created now; returns the row. A missing account is `AccountNotFound`. */
export const query_create_session = Effect.fn("query_create_session")(create_session_untraced)

/** The session if it exists and `expires_at > now`, else `undefined`. Reads only; no span (hot path). */
export const query_session_get_valid = Effect.fnUntraced(function* (
  token_hash: string,
): Effect.fn.Return<AuthSession | undefined, InvalidInput | DbError, Db> {
  const { select_valid_session } = yield* statements
  const id = yield* require_token_hash(token_hash)
  const now = yield* current_date
  const rows = yield* select_valid_session({ id, now })
  return rows[0]
})

/**
 * What a session read at `now` is due: nothing; a touch of `last_seen_at`
 * (stale by the touch interval); or an extension (less than the threshold left).
 */
export type TouchDue = "none" | "touch" | "extend"

export const session_touch_due = Effect.fnUntraced(function* (
  session: AuthSession,
): Effect.fn.Return<TouchDue> {
  const policy = yield* SessionPolicy
  const now = yield* Clock.currentTimeMillis
  if (session.expires_at.getTime() < now + policy.extend_threshold_ms) return "extend"
  if (session.last_seen_at.getTime() <= now - policy.touch_interval_ms) return "touch"
  return "none"
})

/**
 * Sets `last_seen_at = now`, and `expires_at = now + lifetime` when less than
 * the extend threshold remains. Writes nothing when the row is expired, gone,
 * or was touched within the touch interval and needs no extension. Returns the
 * row's `expires_at` after the write, or `undefined` when nothing was written.
 */
export const query_session_touch = Effect.fn("query_session_touch")(function* (
  token_hash: string,
): Effect.fn.Return<Date | undefined, InvalidInput | DbError, Db> {
  const { touch_session } = yield* statements
  const id = yield* require_token_hash(token_hash)
  const policy = yield* SessionPolicy
  const now = yield* Clock.currentTimeMillis
  const rows = yield* touch_session({
    id,
    now: new Date(now),
    stale_before: new Date(now - policy.touch_interval_ms),
    extend_before: new Date(now + policy.extend_threshold_ms),
    extended_expires_at: new Date(now + policy.lifetime_ms),
  })
  return rows[0]?.expires_at
})

/** `query_session_enforce_limit` without its span, for callers that open their own. */
export const enforce_limit_untraced = Effect.fnUntraced(function* (
  account_id: AccountId,
  max_sessions: number,
  options: { readonly keep?: string } = {},
): Effect.fn.Return<number, InvalidInput | DbError, Tx | Db> {
  const { lock_account, evict_sessions } = yield* statements
  yield* Tx
  const owner = yield* checked_account_id(account_id)
  const limit = yield* require_max_sessions(max_sessions)
  const keep = options.keep === undefined ? "" : yield* require_token_hash(options.keep)
  yield* lock_account({ account_id: owner })
  // a new statement: under READ COMMITTED it sees everything committed before the lock was granted
  const now = yield* current_date
  const evicted = yield* evict_sessions({ account_id: owner, now, max_sessions: limit, keep })
  return evicted.length
})

/**
 * Keeps the account's newest `max_sessions` live sessions (created_at desc,
 * id desc; `keep`, the session just created, always counts as newest) and
 * deletes the rest along with the account's expired rows. Returns the number
 * deleted.
 *
 * It first locks the account row (FOR NO KEY UPDATE), so concurrent creations
 * for one account evict one after another, each seeing the sessions the others
 * committed. The lock lasts until the transaction ends, hence `Tx`: call it in
 * the transaction that inserted the new session, after the insert. (NO KEY
 * UPDATE does not conflict with the key-share lock the insert's foreign key
 * check took, so two such transactions cannot deadlock.)
 */
export const query_session_enforce_limit = Effect.fn("query_session_enforce_limit")(enforce_limit_untraced)

/** The account's live sessions, newest first. */
export const query_session_list_for_account = Effect.fn("query_session_list_for_account")(function* (
  account_id: AccountId,
  limit: number = 50,
): Effect.fn.Return<Array<AuthSession>, InvalidInput | DbError, Db> {
  const { select_sessions_for_account } = yield* statements
  const owner = yield* checked_account_id(account_id)
  const count = yield* require_list_limit(limit)
  const now = yield* current_date
  return yield* select_sessions_for_account({ account_id: owner, now, limit: count })
})

/** Live sessions of every account with the username, most recent activity first. */
export const query_session_list_all_active = Effect.fn("query_session_list_all_active")(function* (
  limit: number = 200,
): Effect.fn.Return<Array<AuthSessionWithUsername>, InvalidInput | DbError, Db> {
  const { select_all_active_sessions } = yield* statements
  const count = yield* require_list_limit(limit)
  const now = yield* current_date
  return yield* select_all_active_sessions({ now, limit: count })
})

/**
 * Deletes a session by hash with no account scope: only for hashes from a
 * trusted source, such as the caller's own cookie. Prefer
 * `query_session_revoke_for_account` for user-chosen ids.
 */
export const query_session_revoke_by_hash = Effect.fn("query_session_revoke_by_hash")(function* (
  token_hash: string,
): Effect.fn.Return<void, InvalidInput | DbError, Db> {
  const { delete_session } = yield* statements
  const id = yield* require_token_hash(token_hash)
  yield* delete_session({ id })
})

/** Deletes a session only if `account_id` owns it; `true` if one was deleted. */
export const query_session_revoke_for_account = Effect.fn("query_session_revoke_for_account")(function* (
  token_hash: string,
  account_id: AccountId,
): Effect.fn.Return<boolean, InvalidInput | DbError, Db> {
  const { delete_session_of_account } = yield* statements
  const id = yield* require_token_hash(token_hash)
  const owner = yield* checked_account_id(account_id)
  const rows = yield* delete_session_of_account({ id, account_id: owner })
  return rows.length > 0
})

/** Deletes every session of the account; returns how many. */
export const query_session_revoke_all_for_account = Effect.fn("query_session_revoke_all_for_account")(
  function* (account_id: AccountId): Effect.fn.Return<number, InvalidInput | DbError, Db> {
    const { delete_sessions_of_account } = yield* statements
    const owner = yield* checked_account_id(account_id)
    const rows = yield* delete_sessions_of_account({ account_id: owner })
    return rows.length
  },
)

/**
 * Deletes every session of the account except `keep_hash` (the caller's own):
 * "sign out everywhere else", and what a password change should do. Returns how many.
 */
export const query_session_revoke_others_for_account = Effect.fn("query_session_revoke_others_for_account")(
  function* (account_id: AccountId, keep_hash: string): Effect.fn.Return<number, InvalidInput | DbError, Db> {
    const { delete_other_sessions_of_account } = yield* statements
    const owner = yield* checked_account_id(account_id)
    const keep = yield* require_token_hash(keep_hash)
    const rows = yield* delete_other_sessions_of_account({ account_id: owner, keep })
    return rows.length
  },
)

/**
 * Deletes expired sessions in batches of the policy's `cleanup_batch_size`,
 * each its own short statement, until a batch comes back short. Returns the
 * total. `on_batch` sees each batch's count and the running total (progress).
 */
export const query_session_cleanup_expired = Effect.fn("query_session_cleanup_expired")(function* (
  options: { readonly on_batch?: (deleted: number, total: number) => Effect.Effect<void> } = {},
): Effect.fn.Return<number, InvalidInput | DbError, Db> {
  const { delete_expired_batch } = yield* statements
  const policy = yield* SessionPolicy
  // a batch of 0 would never come back short
  const batch_size = yield* require_int_in_range("cleanup_batch_size", policy.cleanup_batch_size, 1, 100_000)
  const now = yield* current_date
  let total = 0
  while (true) {
    const deleted = yield* delete_expired_batch({ now, batch_size })
    total += deleted.length
    if (options.on_batch !== undefined) yield* options.on_batch(deleted.length, total)
    if (deleted.length < batch_size) return total
  }
})
