import { Clock, Effect } from "effect"
import type { DbError } from "../db/errors.js"
import { type Db, Tx } from "../db/handle.js"
import type { AccountId, AuthSession, AuthSessionWithUsername } from "../schema/session-table.js"
import { type SessionDevice, stored_client_ip, stored_user_agent } from "./device.js"
import { AccountNotFound, type InvalidInput, type SessionRejectionReason } from "./errors.js"
import {
  authenticated_times,
  live_bounds,
  session_rejection,
  type TouchDue,
  touch_bounds,
  touch_due,
} from "./expiry.js"

export type { TouchDue }

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

/** The policy's bounds of a live session now. */
const current_live_bounds = Effect.gen(function* () {
  return live_bounds(yield* SessionPolicy, yield* Clock.currentTimeMillis)
})

/** `query_create_session` without its span, for callers that open their own. */
export const create_session_untraced = Effect.fnUntraced(function* (
  token_hash: string,
  account_id: AccountId,
  expires_at: Date,
  options: { readonly device?: SessionDevice | undefined } = {},
): Effect.fn.Return<AuthSession, InvalidInput | AccountNotFound | DbError, Db> {
  const { insert_session } = yield* statements
  const policy = yield* SessionPolicy
  const id = yield* require_token_hash(token_hash)
  const owner = yield* checked_account_id(account_id)
  const expiry = yield* require_date("expires_at", expires_at)
  const client_ip = yield* stored_client_ip(options.device?.ip, policy.ip_storage)
  const now = yield* Clock.currentTimeMillis
  const times = authenticated_times(policy, now)
  const rows = yield* insert_session({
    id,
    account_id: owner,
    now: times.authenticated_at,
    // no session outlives its absolute expiry, whatever the caller asked
    expires_at: new Date(Math.min(expiry.getTime(), times.absolute_expires_at.getTime())),
    absolute_expires_at: times.absolute_expires_at,
    client_ip,
    user_agent: stored_user_agent(options.device?.user_agent),
  }).pipe(
    Effect.catchIf(
      (error) => error.reason === "foreign_key_violation",
      () =>
        // the id stays out of the message: a text key may be an email
        Effect.fail(new AccountNotFound({ account_id: owner, message: "the account does not exist" })),
    ),
  )
  return rows[0] as AuthSession
})

/**
 * Inserts a session authenticated now; returns the row. `expires_at` is capped
 * at the policy's absolute expiry; `device` is stored as the policy says. A
 * missing account is `AccountNotFound`.
 */
export const query_create_session = Effect.fn("query_create_session")(create_session_untraced)

/** A session read by its hash: the row and the write it is due when valid now, else why not. */
export type SessionCheck =
  | { readonly valid: true; readonly session: AuthSession; readonly due: TouchDue }
  | { readonly valid: false; readonly reason: SessionRejectionReason }

/** One read by key, judged by the policy in force. Reads only; no span (hot path). */
export const query_session_check = Effect.fnUntraced(function* (
  token_hash: string,
): Effect.fn.Return<SessionCheck, InvalidInput | DbError, Db> {
  const { select_session } = yield* statements
  const id = yield* require_token_hash(token_hash)
  const rows = yield* select_session({ id })
  const session = rows[0]
  if (session === undefined) return { valid: false, reason: "unknown" }
  const policy = yield* SessionPolicy
  const now = yield* Clock.currentTimeMillis
  const reason = session_rejection(session, policy, now)
  return reason === undefined
    ? { valid: true, session, due: touch_due(session, policy, now) }
    : { valid: false, reason }
})

/** The session if it exists and is valid now (see `query_session_check`), else `undefined`. */
export const query_session_get_valid = (
  token_hash: string,
): Effect.Effect<AuthSession | undefined, InvalidInput | DbError, Db> =>
  Effect.map(query_session_check(token_hash), (check) => (check.valid ? check.session : undefined))

/** What a valid session read now is due: nothing, a touch of `last_seen_at`, or an extension. */
export const session_touch_due = (session: AuthSession) =>
  Effect.gen(function* () {
    return touch_due(session, yield* SessionPolicy, yield* Clock.currentTimeMillis)
  })

/**
 * Sets `last_seen_at = now`, and `expires_at = now + lifetime` (capped at the
 * absolute expiry) when less than the extend threshold remains. Writes nothing
 * when the session is not valid (expired, idle, past its absolute expiry,
 * gone), or was touched within the touch interval and needs no extension.
 * Returns the row's `expires_at` after the write, or `undefined` when nothing
 * was written.
 */
export const query_session_touch = Effect.fn("query_session_touch")(function* (
  token_hash: string,
): Effect.fn.Return<Date | undefined, InvalidInput | DbError, Db> {
  const { touch_session } = yield* statements
  const id = yield* require_token_hash(token_hash)
  const bounds = touch_bounds(yield* SessionPolicy, yield* Clock.currentTimeMillis)
  const rows = yield* touch_session({ id, ...bounds })
  return rows[0]?.expires_at
})

/**
 * Marks a valid session re-authenticated now (the user just proved a
 * credential again): new `authenticated_at`, and expiries counted from it.
 * Returns the updated row, or `undefined` when the session is not valid.
 */
export const query_session_reauthenticate = Effect.fn("query_session_reauthenticate")(function* (
  token_hash: string,
): Effect.fn.Return<AuthSession | undefined, InvalidInput | DbError, Db> {
  const { reauthenticate_session } = yield* statements
  const id = yield* require_token_hash(token_hash)
  const policy = yield* SessionPolicy
  const now = yield* Clock.currentTimeMillis
  const { expires_at, absolute_expires_at } = authenticated_times(policy, now)
  const rows = yield* reauthenticate_session({
    id,
    ...live_bounds(policy, now),
    expires_at,
    absolute_expires_at,
  })
  return rows[0]
})

/**
 * Moves a valid session to the key `new_token_hash` (the hash of a new
 * token): the old token stops working, nothing else changes. Returns the row,
 * or `undefined` when the session is not valid.
 */
export const query_session_rotate = Effect.fn("query_session_rotate")(function* (
  token_hash: string,
  new_token_hash: string,
): Effect.fn.Return<AuthSession | undefined, InvalidInput | DbError, Db> {
  const { rotate_session } = yield* statements
  const id = yield* require_token_hash(token_hash)
  const new_id = yield* require_token_hash(new_token_hash)
  const rows = yield* rotate_session({ id, new_id, ...(yield* current_live_bounds) })
  return rows[0]
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
  const bounds = yield* current_live_bounds
  const evicted = yield* evict_sessions({ account_id: owner, ...bounds, max_sessions: limit, keep })
  return evicted.length
})

/**
 * Keeps the account's newest `max_sessions` valid sessions (created_at desc,
 * id desc; `keep`, the session just created, always counts as newest) and
 * deletes the rest along with the account's ended ones (expired, idle, past
 * the absolute expiry). Returns the number
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

/** The account's valid sessions, newest first, with their device data. */
export const query_session_list_for_account = Effect.fn("query_session_list_for_account")(function* (
  account_id: AccountId,
  limit: number = 50,
): Effect.fn.Return<Array<AuthSession>, InvalidInput | DbError, Db> {
  const { select_sessions_for_account } = yield* statements
  const owner = yield* checked_account_id(account_id)
  const count = yield* require_list_limit(limit)
  const bounds = yield* current_live_bounds
  return yield* select_sessions_for_account({ account_id: owner, ...bounds, limit: count })
})

/** Valid sessions of every account with the username, most recent activity first. */
export const query_session_list_all_active = Effect.fn("query_session_list_all_active")(function* (
  limit: number = 200,
): Effect.fn.Return<Array<AuthSessionWithUsername>, InvalidInput | DbError, Db> {
  const { select_all_active_sessions } = yield* statements
  const count = yield* require_list_limit(limit)
  const bounds = yield* current_live_bounds
  return yield* select_all_active_sessions({ ...bounds, limit: count })
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
