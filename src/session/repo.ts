import { Clock, Context, Effect, Layer, Option, Redacted } from "effect"
import { Database } from "../db/database.js"
import type { DbError } from "../db/errors.js"
import { Db, Tx } from "../db/handle.js"
import { retry_read } from "../db/read-retry.js"
import type {
  AccountId,
  AuthSession,
  AuthSessionWithUsername,
  SessionTable,
} from "../schema/session-table.js"
import { generate_session_token, hash_session_token, is_session_token } from "../token.js"
import type { SessionDevice } from "./device.js"
import {
  type AccountNotFound,
  type InvalidInput,
  SessionRejected,
  type SessionRejectionReason,
} from "./errors.js"
import { require_account_id, require_max_sessions } from "./input.js"
import { SessionPolicy } from "./policy.js"
import {
  create_session_untraced,
  enforce_limit_untraced,
  query_session_check,
  query_session_cleanup_expired,
  query_session_list_all_active,
  query_session_list_for_account,
  query_session_reauthenticate,
  query_session_revoke_all_for_account,
  query_session_revoke_by_hash,
  query_session_revoke_for_account,
  query_session_revoke_others_for_account,
  query_session_rotate,
  query_session_touch,
} from "./queries.js"
import { layer_session_table, SessionSchema } from "./session-schema.js"
import { SessionTouches } from "./touch.js"

export interface CreatedSession {
  /** The cookie value. Shown once; only its hash is stored. */
  readonly token: Redacted.Redacted<string>
  readonly session: AuthSession
}

export interface Authenticated {
  readonly session: AuthSession
  /** The validation moved `expires_at`: the cookie's Max-Age should follow. */
  readonly extended: boolean
}

/** A token as it arrives: plain, or wrapped so it cannot be logged by accident. */
export type TokenInput = string | Redacted.Redacted<string>

export interface SessionRepoShape {
  /**
   * Creates a session for the account in one transaction: insert, lock the
   * account row, evict past `max_sessions` (default from the policy). The new
   * session always survives its own creation. Not retried: a `DbError` with
   * `commit_unknown` means the connection was lost during COMMIT, so the
   * session may exist (its token is lost; it only counts against the limit).
   */
  readonly create_session: (
    account_id: AccountId,
    options?: { readonly max_sessions?: number; readonly device?: SessionDevice },
  ) => Effect.Effect<CreatedSession, InvalidInput | AccountNotFound | DbError>
  /**
   * The valid session for a cookie token, or `SessionRejected` with the reason
   * (a malformed token costs no query). One read; a touch of `last_seen_at` is
   * started in the background only when due. When less than the extend
   * threshold remains, the extension is written before returning and
   * `extended` is true: re-send the cookie then, so it expires with the row.
   * Outside a transaction a lost connection is retried on a new one for up to
   * `READ_RETRY_WINDOW_MS`.
   */
  readonly authenticate: (token: TokenInput) => Effect.Effect<Authenticated, SessionRejected | DbError>
  /** `authenticate` as an option, for callers that need neither the reason nor the cookie. */
  readonly validate: (token: TokenInput) => Effect.Effect<Option.Option<AuthSession>, DbError>
  /**
   * The user just proved a credential again (e.g. re-entered the password):
   * the session counts as authenticated now, for `require_fresh_session`, and
   * its expiries restart from now. Re-send the cookie (`extended` is true).
   */
  readonly reauthenticate: (token: TokenInput) => Effect.Effect<Authenticated, SessionRejected | DbError>
  /**
   * A new token for the same session (same expiry, device and times): the old
   * token stops working at once. Use it when the session's privileges change,
   * e.g. after a password change, and set the new cookie.
   */
  readonly rotate: (token: TokenInput) => Effect.Effect<CreatedSession, SessionRejected | DbError>
  /** Logout: deletes the session of this token, if any. */
  readonly revoke: (token: TokenInput) => Effect.Effect<void, DbError>
  /** Deletes session `session_id` (its hash) only if `account_id` owns it. */
  readonly revoke_for_account: (
    session_id: string,
    account_id: AccountId,
  ) => Effect.Effect<boolean, InvalidInput | DbError>
  readonly revoke_all_for_account: (account_id: AccountId) => Effect.Effect<number, InvalidInput | DbError>
  /** Deletes every session of the account but `keep_session_id` (the caller's own). */
  readonly revoke_others_for_account: (
    account_id: AccountId,
    keep_session_id: string,
  ) => Effect.Effect<number, InvalidInput | DbError>
  /** Valid sessions of the account with their device data, newest first (a read: retried like `authenticate`). */
  readonly list_for_account: (
    account_id: AccountId,
    options?: { readonly limit?: number },
  ) => Effect.Effect<Array<AuthSession>, InvalidInput | DbError>
  readonly list_all_active: (options?: {
    readonly limit?: number
  }) => Effect.Effect<Array<AuthSessionWithUsername>, InvalidInput | DbError>
  readonly cleanup_expired: () => Effect.Effect<number, InvalidInput | DbError>
}

const token_value = (token: TokenInput): string =>
  Redacted.isRedacted(token) ? Redacted.value(token) : token

const REJECTION_MESSAGES: Record<SessionRejectionReason, string> = {
  malformed: "the token is not a session token",
  unknown: "no such session: never issued, signed out, revoked or cleaned up",
  expired: "the session expired",
  idle: "the session was unused for longer than the idle timeout",
  absolute: "the session reached its absolute lifetime",
}

const rejected = (reason: SessionRejectionReason) =>
  Effect.fail(new SessionRejected({ reason, message: REJECTION_MESSAGES[reason] }))

/** The session service applications use; its methods hide `Db` and `Tx`. */
export class SessionRepo extends Context.Service<SessionRepo, SessionRepoShape>()(
  "effect-session-repo/SessionRepo",
) {
  static readonly layer_without_touches: Layer.Layer<SessionRepo, never, Database | Db | SessionTouches> =
    Layer.effect(
      SessionRepo,
      Effect.gen(function* () {
        const database = yield* Database
        const touches = yield* SessionTouches
        const pool = yield* Db
        // the session table this repo was built for, whatever the caller's context holds
        const schema = yield* SessionSchema
        const with_schema = Effect.provideService(SessionSchema, schema)
        const on = <A, E>(db: Db["Service"], effect: Effect.Effect<A, E, Db>) =>
          with_schema(Effect.provideService(effect, Db, db))
        // Called inside Database.transaction, a method joins that transaction;
        // otherwise it runs on the pool. (PGlite has one connection: a statement
        // sent to the pool from inside a transaction would wait for it forever.)
        const on_current = <A, E>(effect: Effect.Effect<A, E, Db>) =>
          Effect.flatMap(Effect.serviceOption(Tx), (tx) =>
            on(
              Option.getOrElse(tx, () => pool),
              effect,
            ),
          )
        // Reads on the pool retry a lost connection by themselves (a new one is
        // taken); retry_read leaves a transaction's lost connection to the caller.
        const read_on_current = <A, E>(effect: Effect.Effect<A, E, Db>) => retry_read(on_current(effect))

        const create_session = Effect.fn("SessionRepo.create_session")(function* (
          account_id: AccountId,
          options: { readonly max_sessions?: number; readonly device?: SessionDevice } = {},
        ) {
          const policy = yield* SessionPolicy
          // checked before the transaction opens, so bad input costs no round trip
          const owner = yield* require_account_id(schema, account_id)
          const max_sessions = yield* require_max_sessions(options.max_sessions ?? policy.max_sessions)
          const token = yield* generate_session_token
          const token_hash = hash_session_token(token)
          const session = yield* database.transaction(
            Effect.gen(function* () {
              const now = yield* Clock.currentTimeMillis
              const created = yield* create_session_untraced(
                token_hash,
                owner,
                new Date(now + policy.lifetime_ms),
                { device: options.device },
              )
              yield* enforce_limit_untraced(owner, max_sessions, { keep: token_hash })
              return created
            }).pipe(with_schema),
          )
          return { token: Redacted.make(token), session }
        })

        // no span: it runs on every request (see query_session_get_valid)
        const check_session = (token_hash: string) =>
          read_on_current(query_session_check(token_hash)).pipe(
            // the hash of a well-formed token is always a valid argument
            Effect.catchTag("InvalidInput", Effect.die),
          )

        /**
         * `authenticate`'s work, a rejection returned rather than failed: failing
         * and catching costs `validate` (which drops the reason) on every call.
         */
        const authenticate_or_reason = Effect.fnUntraced(function* (
          token: TokenInput,
        ): Effect.fn.Return<Authenticated | SessionRejectionReason, DbError> {
          const raw = token_value(token)
          if (!is_session_token(raw)) return "malformed"
          const token_hash = hash_session_token(raw)
          const check = yield* check_session(token_hash)
          if (!check.valid) return check.reason
          const { session, due } = check
          if (due === "touch") yield* with_schema(touches.touch(token_hash))
          if (due !== "extend") return { session, extended: false }
          // Rare (once per extend threshold): wait, so the caller can re-send the
          // cookie with the expiry the row really has. Inside a transaction, write
          // it there: a touch on the pool could wait for this very transaction.
          const extended = Option.isSome(yield* Effect.serviceOption(Tx))
            ? yield* on_current(query_session_touch(token_hash)).pipe(
                Effect.map(Option.fromUndefinedOr),
                Effect.catchTag("InvalidInput", Effect.die),
              )
            : yield* with_schema(touches.touch_and_wait(token_hash))
          // Only a later expiry is an extension: a touch already in flight when this
          // request came, which this one joined, may have written last_seen_at only.
          if (Option.isNone(extended) || extended.value.getTime() <= session.expires_at.getTime()) {
            // Not extended here: another request's extension got there between this
            // read and this write (or the write failed). Read the row again, so the
            // caller still re-sends a cookie that expires with the row.
            const current = yield* check_session(token_hash)
            if (!current.valid) return current.reason
            const moved = current.session.expires_at.getTime() > session.expires_at.getTime()
            return { session: current.session, extended: moved }
          }
          const now = new Date(yield* Clock.currentTimeMillis)
          return { session: { ...session, expires_at: extended.value, last_seen_at: now }, extended: true }
        })

        const authenticate = (token: TokenInput) =>
          Effect.flatMap(authenticate_or_reason(token), (outcome) =>
            typeof outcome === "string" ? rejected(outcome) : Effect.succeed(outcome),
          )

        const validate = (token: TokenInput) =>
          Effect.map(authenticate_or_reason(token), (outcome) =>
            typeof outcome === "string" ? Option.none<AuthSession>() : Option.some(outcome.session),
          )

        /**
         * Runs `write` (an UPDATE that changes only a valid session) on the token's
         * session; when it changed nothing, fails with the reason the session is
         * not valid (a rare path, so a second read is fine).
         */
        const write_valid_session = Effect.fnUntraced(function* (
          token: TokenInput,
          write: (token_hash: string) => Effect.Effect<AuthSession | undefined, InvalidInput | DbError, Db>,
        ) {
          const raw = token_value(token)
          if (!is_session_token(raw)) return yield* rejected("malformed")
          const token_hash = hash_session_token(raw)
          // the hash of a well-formed token is always a valid argument
          const session = yield* on_current(write(token_hash)).pipe(
            Effect.catchTag("InvalidInput", Effect.die),
          )
          if (session !== undefined) return session
          const check = yield* check_session(token_hash)
          return yield* rejected(check.valid ? "unknown" : check.reason)
        })

        const reauthenticate = (token: TokenInput) =>
          Effect.map(write_valid_session(token, query_session_reauthenticate), (session) => ({
            session,
            extended: true,
          }))

        const rotate = Effect.fnUntraced(function* (token: TokenInput) {
          const new_token = yield* generate_session_token
          const session = yield* write_valid_session(token, (token_hash) =>
            query_session_rotate(token_hash, hash_session_token(new_token)),
          )
          return { token: Redacted.make(new_token), session }
        })

        // the span is query_session_revoke_by_hash's
        const revoke = Effect.fnUntraced(function* (token: TokenInput) {
          const raw = token_value(token)
          if (!is_session_token(raw)) return
          yield* on_current(query_session_revoke_by_hash(hash_session_token(raw))).pipe(
            Effect.catchTag("InvalidInput", Effect.die),
          )
        })

        return SessionRepo.of({
          create_session,
          authenticate,
          validate,
          reauthenticate,
          rotate,
          revoke,
          revoke_others_for_account: (account_id, keep_session_id) =>
            on_current(query_session_revoke_others_for_account(account_id, keep_session_id)),
          revoke_for_account: (session_id, account_id) =>
            on_current(query_session_revoke_for_account(session_id, account_id)),
          revoke_all_for_account: (account_id) =>
            on_current(query_session_revoke_all_for_account(account_id)),
          list_for_account: (account_id, options = {}) =>
            read_on_current(query_session_list_for_account(account_id, options.limit)),
          list_all_active: (options = {}) => read_on_current(query_session_list_all_active(options.limit)),
          cleanup_expired: () => on_current(query_session_cleanup_expired()),
        })
      }),
    )

  /**
   * `SessionRepo` with its own `SessionTouches` on the standalone session
   * table (or the one `SessionSchema` holds); needs a database layer.
   */
  static readonly layer: Layer.Layer<SessionRepo | SessionTouches, never, Database | Db> =
    SessionRepo.layer_without_touches.pipe(Layer.provideMerge(SessionTouches.layer))

  /**
   * `SessionRepo` on `table`, the session table you defined with
   * `session_table` over your own account table; it also provides
   * `SessionSchema`, so the query functions run on that table too. A fresh
   * layer: two tables never share one repo through layer memoization.
   */
  static readonly layer_for = (
    table: SessionTable,
  ): Layer.Layer<SessionRepo | SessionTouches, never, Database | Db> =>
    Layer.fresh(SessionRepo.layer).pipe(Layer.provideMerge(layer_session_table(table)))
}
