import { Effect } from "effect"
import type { DbError } from "../db/errors.js"
import type { Db, Tx } from "../db/handle.js"
import type { AccountId } from "../schema/register.js"
import type { AuthSession, AuthSessionWithUsername } from "../schema/session-table.js"
import { CurrentSessionTable } from "./current-session-table.js"
import { type SessionDevice, stored_client_ip, stored_user_agent } from "./device.js"
import type { AccountNotFound, InvalidInput } from "./errors.js"
import type { RevokeReason } from "./events.js"
import {
  require_account_id,
  require_cleanup_batch_size,
  require_date,
  require_list_limit,
  require_max_sessions,
  require_revoke_reason,
  require_token_hash,
} from "./input.js"
import { session_operations } from "./operations.js"
import { SessionPolicy } from "./policy.js"

// The specification's query functions as Effects, on the session table in
// `CurrentSessionTable` under the `SessionPolicy` in force. Each requires `Db`
// (the pool or the current transaction); `query_session_enforce_limit` also
// requires `Tx`. `now` always comes from Effect's Clock. Each checks its input,
// opens a span named after itself and runs its operation (./operations.ts).

/** The operations on the current table under the policy in force. */
const operations = Effect.gen(function* () {
  return session_operations(yield* CurrentSessionTable, yield* SessionPolicy)
})

/** An account id checked against the current table's key column. */
const checked_account_id = (value: AccountId) =>
  Effect.flatMap(CurrentSessionTable, (table) => require_account_id(table, value))

/** Why sessions are revoked, for their events and audit rows: `logout` for a revoke by token, else `owner` by default. */
export interface RevokeOptions {
  readonly reason?: RevokeReason
}

/** What every query function requires. */
export type Queries = CurrentSessionTable | SessionPolicy | Db

/**
 * The query functions' types, written out: account ids and rows stay the
 * registered table's in the published declarations (an inferred type would be
 * frozen to the standalone table's when the package is built).
 */
export interface SessionQueries {
  readonly query_create_session: (
    token_hash: string,
    account_id: AccountId,
    expires_at: Date,
    options?: { readonly device?: SessionDevice | undefined },
  ) => Effect.Effect<AuthSession, InvalidInput | AccountNotFound | DbError, Queries>
  readonly query_session_get_valid: (
    token_hash: string,
  ) => Effect.Effect<AuthSession | undefined, InvalidInput | DbError, Queries>
  readonly query_session_touch: (
    token_hash: string,
  ) => Effect.Effect<Date | undefined, InvalidInput | DbError, Queries>
  readonly query_session_reauthenticate: (
    token_hash: string,
  ) => Effect.Effect<AuthSession | undefined, InvalidInput | DbError, Queries>
  readonly query_session_rotate: (
    token_hash: string,
    new_token_hash: string,
  ) => Effect.Effect<AuthSession | undefined, InvalidInput | DbError, Queries>
  readonly query_session_enforce_limit: (
    account_id: AccountId,
    max_sessions: number,
    options?: { readonly keep?: string },
  ) => Effect.Effect<number, InvalidInput | DbError, Queries | Tx>
  readonly query_session_list_for_account: (
    account_id: AccountId,
    limit?: number,
  ) => Effect.Effect<Array<AuthSession>, InvalidInput | DbError, Queries>
  readonly query_session_list_all_active: (
    limit?: number,
  ) => Effect.Effect<Array<AuthSessionWithUsername>, InvalidInput | DbError, Queries>
  readonly query_session_revoke_by_hash: (
    token_hash: string,
    options?: RevokeOptions,
  ) => Effect.Effect<void, InvalidInput | DbError, Queries>
  readonly query_session_revoke_for_account: (
    token_hash: string,
    account_id: AccountId,
    options?: RevokeOptions,
  ) => Effect.Effect<boolean, InvalidInput | DbError, Queries>
  readonly query_session_revoke_all_for_account: (
    account_id: AccountId,
    options?: RevokeOptions,
  ) => Effect.Effect<number, InvalidInput | DbError, Queries>
  readonly query_session_revoke_others_for_account: (
    account_id: AccountId,
    keep_hash: string,
    options?: RevokeOptions,
  ) => Effect.Effect<number, InvalidInput | DbError, Queries>
  readonly query_session_cleanup_expired: (options?: {
    readonly on_batch?: (deleted: number, total: number) => Effect.Effect<void>
  }) => Effect.Effect<number, InvalidInput | DbError, Queries>
}

/**
 * Inserts a session authenticated now; returns the row. `expires_at` is capped
 * at the policy's absolute lifetime; `device` is stored as the policy says. A
 * missing account is `AccountNotFound`.
 */
export const query_create_session: SessionQueries["query_create_session"] = Effect.fn("query_create_session")(
  function* (token_hash, account_id, expires_at, options = {}) {
    const policy = yield* SessionPolicy
    return yield* (yield* operations).create({
      id: yield* require_token_hash(token_hash),
      account_id: yield* checked_account_id(account_id),
      expires_at: yield* require_date("expires_at", expires_at),
      client_ip: yield* stored_client_ip(options.device?.ip, policy.ip_storage),
      user_agent: stored_user_agent(options.device?.user_agent),
    })
  },
)

/** The session if it exists and is valid now (expiries, idle and absolute limits), else `undefined`. */
export const query_session_get_valid: SessionQueries["query_session_get_valid"] = Effect.fn(
  "query_session_get_valid",
)(function* (token_hash) {
  const check = yield* (yield* operations).check(yield* require_token_hash(token_hash))
  return check.valid ? check.session : undefined
})

/**
 * Sets `last_seen_at = now`, and `expires_at = now + lifetime` (capped at the
 * absolute end) when less than the extend threshold remains. Writes nothing
 * when the session is not valid (expired, idle, past its absolute lifetime,
 * gone), or was touched within the touch interval and needs no extension.
 * Returns the row's `expires_at` after the write, or `undefined` when nothing
 * was written.
 */
export const query_session_touch: SessionQueries["query_session_touch"] = Effect.fn("query_session_touch")(
  function* (token_hash) {
    return yield* (yield* operations).touch(yield* require_token_hash(token_hash))
  },
)

/**
 * Marks a valid session re-authenticated now (the user just proved a
 * credential again): new `authenticated_at`, and expiries counted from it.
 * Returns the updated row, or `undefined` when the session is not valid.
 */
export const query_session_reauthenticate: SessionQueries["query_session_reauthenticate"] = Effect.fn(
  "query_session_reauthenticate",
)(function* (token_hash) {
  return yield* (yield* operations).reauthenticate(yield* require_token_hash(token_hash))
})

/**
 * Moves a valid session to the key `new_token_hash` (the hash of a new
 * token): the old token stops working, nothing else changes. Returns the row,
 * or `undefined` when the session is not valid.
 */
export const query_session_rotate: SessionQueries["query_session_rotate"] = Effect.fn("query_session_rotate")(
  function* (token_hash, new_token_hash) {
    const id = yield* require_token_hash(token_hash)
    return yield* (yield* operations).rotate(id, yield* require_token_hash(new_token_hash))
  },
)

/**
 * Keeps the account's newest `max_sessions` valid sessions (created_at desc,
 * id desc; `keep`, the session just created, always counts as newest) and
 * deletes the rest along with the account's ended ones (expired, idle, past
 * the absolute lifetime). Returns the number deleted.
 *
 * It first locks the account row (FOR NO KEY UPDATE), so concurrent creations
 * for one account evict one after another, each seeing the sessions the others
 * committed. The lock lasts until the transaction ends, hence `Tx`: call it in
 * the transaction that inserted the new session, after the insert. (NO KEY
 * UPDATE does not conflict with the key-share lock the insert's foreign key
 * check took, so two such transactions cannot deadlock.)
 */
export const query_session_enforce_limit: SessionQueries["query_session_enforce_limit"] = Effect.fn(
  "query_session_enforce_limit",
)(function* (account_id, max_sessions, options = {}) {
  const owner = yield* checked_account_id(account_id)
  const limit = yield* require_max_sessions(max_sessions)
  const keep = options.keep === undefined ? "" : yield* require_token_hash(options.keep)
  return yield* (yield* operations).enforce_limit(owner, limit, keep)
})

/** The account's valid sessions, newest first, with their device data. */
export const query_session_list_for_account: SessionQueries["query_session_list_for_account"] = Effect.fn(
  "query_session_list_for_account",
)(function* (account_id, limit = 50) {
  const owner = yield* checked_account_id(account_id)
  return yield* (yield* operations).list_for_account(owner, yield* require_list_limit(limit))
})

/** Valid sessions of every account with the username (the label column), most recent activity first. */
export const query_session_list_all_active: SessionQueries["query_session_list_all_active"] = Effect.fn(
  "query_session_list_all_active",
)(function* (limit = 200) {
  return yield* (yield* operations).list_all_active(yield* require_list_limit(limit))
})

/**
 * Deletes a session by hash with no account scope: only for hashes from a
 * trusted source, such as the caller's own cookie. Prefer
 * `query_session_revoke_for_account` for user-chosen ids.
 */
export const query_session_revoke_by_hash: SessionQueries["query_session_revoke_by_hash"] = Effect.fn(
  "query_session_revoke_by_hash",
)(function* (token_hash, options = {}) {
  const id = yield* require_token_hash(token_hash)
  yield* (yield* operations).revoke_by_hash(id, yield* require_revoke_reason(options.reason, "logout"))
})

/** Deletes a session only if `account_id` owns it; `true` if one was deleted. */
export const query_session_revoke_for_account: SessionQueries["query_session_revoke_for_account"] = Effect.fn(
  "query_session_revoke_for_account",
)(function* (token_hash, account_id, options = {}) {
  const id = yield* require_token_hash(token_hash)
  const owner = yield* checked_account_id(account_id)
  const reason = yield* require_revoke_reason(options.reason, "owner")
  return yield* (yield* operations).revoke_for_account(id, owner, reason)
})

/** Deletes every session of the account; returns how many. */
export const query_session_revoke_all_for_account: SessionQueries["query_session_revoke_all_for_account"] =
  Effect.fn("query_session_revoke_all_for_account")(function* (account_id, options = {}) {
    const owner = yield* checked_account_id(account_id)
    const reason = yield* require_revoke_reason(options.reason, "owner")
    return yield* (yield* operations).revoke_all_for_account(owner, reason)
  })

/**
 * Deletes every session of the account except `keep_hash` (the caller's own):
 * "sign out everywhere else", and what a password change should do. Returns how many.
 */
export const query_session_revoke_others_for_account: SessionQueries["query_session_revoke_others_for_account"] =
  Effect.fn("query_session_revoke_others_for_account")(function* (account_id, keep_hash, options = {}) {
    const owner = yield* checked_account_id(account_id)
    const keep = yield* require_token_hash(keep_hash)
    const reason = yield* require_revoke_reason(options.reason, "owner")
    return yield* (yield* operations).revoke_others_for_account(owner, keep, reason)
  })

/**
 * Deletes expired sessions in batches of the policy's `cleanup_batch_size`,
 * each its own short statement, until a batch comes back short. Returns the
 * total. `on_batch` sees each batch's count and the running total (progress).
 */
export const query_session_cleanup_expired: SessionQueries["query_session_cleanup_expired"] = Effect.fn(
  "query_session_cleanup_expired",
)(function* (options = {}) {
  yield* require_cleanup_batch_size((yield* SessionPolicy).cleanup_batch_size)
  return yield* (yield* operations).cleanup_expired(options.on_batch)
})
