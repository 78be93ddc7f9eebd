import { Clock, Context, Effect, Exit, Layer, Option, Redacted } from "effect"
import { Database } from "../db/database.js"
import type { DbError } from "../db/errors.js"
import { Db, Tx } from "../db/handle.js"
import type { Notifications } from "../db/notifications.js"
import { retry_read } from "../db/read-retry.js"
import { StandbyReads } from "../db/standby-reads.js"
import { session_cache_lookups, session_validations } from "../observability/metrics.js"
import { is_traced, traced_as } from "../observability/spans.js"
import type { AccountId, RegisteredSessionTable } from "../schema/register.js"
import type { AnyAccountId, AuthSession, AuthSessionWithUsername } from "../schema/session-table.js"
import { generate_session_token, hash_session_token, is_session_token } from "../token.js"
import {
  listening_session_cache,
  SessionCache,
  type SessionCacheOptions,
  type SessionCacheShape,
} from "./cache.js"
import { CurrentSessionTable, layer_current_session_table } from "./current-session-table.js"
import { type SessionDevice, stored_client_ip, stored_user_agent } from "./device.js"
import {
  type AccountNotFound,
  type InvalidInput,
  SessionRejected,
  type SessionRejectionReason,
} from "./errors.js"
import { SessionEvents, told_context } from "./events.js"
import {
  require_account_id,
  require_cleanup_batch_size,
  require_list_limit,
  require_max_sessions,
  require_revoke_reason,
  require_token_hash,
} from "./input.js"
import { type SessionCheck, session_operations } from "./operations.js"
import { SessionPolicy } from "./policy.js"
import type { RevokeOptions } from "./queries.js"
import { SessionTouches } from "./touch.js"

export interface CreatedSession<Id extends AnyAccountId = AccountId> {
  /** The cookie value. Shown once; only its hash is stored. */
  readonly token: Redacted.Redacted<string>
  readonly session: AuthSession<Id>
}

export interface Authenticated<Id extends AnyAccountId = AccountId> {
  readonly session: AuthSession<Id>
  /** The validation moved `expires_at` (an extension, or a cut to a tightened policy's end): the cookie's Max-Age should follow. */
  readonly extended: boolean
}

/** A token as it arrives: plain, or wrapped so it cannot be logged by accident. */
export type TokenInput = string | Redacted.Redacted<string>

/**
 * The session service applications use; its methods hide `Db` and `Tx`.
 * Account ids have the registered session table's key type (`Register`).
 */
export interface SessionRepoShape<Id extends AnyAccountId = AccountId> {
  /**
   * Creates a session for the account in one transaction: insert, lock the
   * account row, evict past `max_sessions` (default from the policy). The new
   * session always survives its own creation. Not retried: a `DbError` with
   * `commit_unknown` means the connection was lost during COMMIT, so the
   * session may exist (its token is lost; it only counts against the limit).
   */
  readonly create_session: (
    account_id: Id,
    options?: { readonly max_sessions?: number; readonly device?: SessionDevice },
  ) => Effect.Effect<CreatedSession<Id>, InvalidInput | AccountNotFound | DbError>
  /**
   * The valid session for a cookie token, or `SessionRejected` with the reason
   * (a malformed token costs no query). One read; a touch of `last_seen_at` is
   * started in the background only when due. When less than the extend
   * threshold remains, the extension is written before returning and
   * `extended` is true: re-send the cookie then, so it expires with the row.
   * Outside a transaction a lost connection is retried on a new one for up to
   * `READ_RETRY_WINDOW_MS`.
   */
  readonly authenticate: (token: TokenInput) => Effect.Effect<Authenticated<Id>, SessionRejected | DbError>
  /** `authenticate` as an option, for callers that need neither the reason nor the cookie. */
  readonly validate: (token: TokenInput) => Effect.Effect<Option.Option<AuthSession<Id>>, DbError>
  /**
   * The user just proved a credential again (e.g. re-entered the password):
   * the session counts as authenticated now, for `require_fresh_session`, and
   * its expiries restart from now. Re-send the cookie (`extended` is true).
   */
  readonly reauthenticate: (token: TokenInput) => Effect.Effect<Authenticated<Id>, SessionRejected | DbError>
  /**
   * A new token for the same session (same expiry, device and times): the old
   * token stops working at once. Use it when the session's privileges change,
   * e.g. after a password change, and set the new cookie.
   */
  readonly rotate: (token: TokenInput) => Effect.Effect<CreatedSession<Id>, SessionRejected | DbError>
  /**
   * Logout: deletes the session of this token, if any. The reason recorded
   * in its event is `logout` unless `options.reason` says otherwise (as for
   * every revoke: see `RevokeOptions`).
   */
  readonly revoke: (token: TokenInput, options?: RevokeOptions) => Effect.Effect<void, InvalidInput | DbError>
  /** Deletes session `session_id` (its hash) only if `account_id` owns it. */
  readonly revoke_for_account: (
    session_id: string,
    account_id: Id,
    options?: RevokeOptions,
  ) => Effect.Effect<boolean, InvalidInput | DbError>
  readonly revoke_all_for_account: (
    account_id: Id,
    options?: RevokeOptions,
  ) => Effect.Effect<number, InvalidInput | DbError>
  /** Deletes every session of the account but `keep_session_id` (the caller's own). */
  readonly revoke_others_for_account: (
    account_id: Id,
    keep_session_id: string,
    options?: RevokeOptions,
  ) => Effect.Effect<number, InvalidInput | DbError>
  /** Valid sessions of the account with their device data, newest first (a read: retried like `authenticate`). */
  readonly list_for_account: (
    account_id: Id,
    options?: { readonly limit?: number },
  ) => Effect.Effect<Array<AuthSession<Id>>, InvalidInput | DbError>
  readonly list_all_active: (options?: {
    readonly limit?: number
  }) => Effect.Effect<Array<AuthSessionWithUsername<Id>>, InvalidInput | DbError>
  readonly cleanup_expired: () => Effect.Effect<number, InvalidInput | DbError>
}

const token_value = (token: TokenInput): string =>
  Redacted.isRedacted(token) ? Redacted.value(token) : token

/** The storage key of a token, or undefined when it is not a token (no query is worth sending). */
const hash_of = (token: TokenInput): string | undefined => {
  const raw = token_value(token)
  return is_session_token(raw) ? hash_session_token(raw) : undefined
}

const REJECTION_MESSAGES: Record<SessionRejectionReason, string> = {
  malformed: "the token is not a session token",
  unknown: "no such session: never issued, signed out, revoked or cleaned up",
  expired: "the session expired",
  idle: "the session was unused for longer than the idle timeout",
  absolute: "the session reached its absolute lifetime",
}

/**
 * A method's span, `SessionRepo.<name>`, when a tracing backend is installed
 * (src/observability/spans.ts). Without a stack trace: it would point into
 * this file, and capturing one costs each call about a microsecond.
 */
const traced = (name: string) => traced_as(`SessionRepo.${name}`)

/**
 * The span of a call on every request (`validate`, `authenticate`) when a
 * tracing backend is installed: a leaf, not made the parent of what runs
 * inside (that costs two context changes per call; nothing inside has a span
 * of its own on the common path).
 */
const traced_leaf = <A, E, R>(
  context: Context.Context<never>,
  name: string,
  effect: Effect.Effect<A, E, R>,
): Effect.Effect<A, E, R> =>
  is_traced(context) ? Effect.useSpan(`SessionRepo.${name}`, () => effect) : effect

/** A cache miss's read of a session, begun at the cache's point `begun`, and who waits for its outcome. */
interface MissInFlight {
  readonly begun: number
  readonly waiting: Array<(exit: Exit.Exit<SessionCheck, DbError>) => void>
}

const rejected = (reason: SessionRejectionReason) =>
  Effect.fail(new SessionRejected({ reason, message: REJECTION_MESSAGES[reason] }))

const make = Effect.gen(function* () {
  const database = yield* Database
  const touches = yield* SessionTouches
  const pool = yield* Db
  const events = yield* SessionEvents
  const table = yield* CurrentSessionTable
  // read once, here: a policy given to the layer is the one every call follows
  const policy = yield* SessionPolicy
  const operations = session_operations(table, policy)
  const account_id_of = (value: AccountId) => require_account_id(table, value)

  // Called inside Database.transaction, a method joins that transaction;
  // otherwise it runs on the pool. (PGlite has one connection: a statement
  // sent to the pool from inside a transaction would wait for it forever.)
  const current_handle = Effect.map(
    Effect.serviceOption(Tx),
    Option.getOrElse(() => pool),
  )
  // Db is usually that handle already (the runtime's pool, or the transaction's):
  // then the fiber's context is left as it is
  const on_current = <A, E>(effect: Effect.Effect<A, E, Db>): Effect.Effect<A, E> =>
    Effect.contextWith((context: Context.Context<never>) => {
      const db = Context.getOrUndefined(context, Tx) ?? pool
      return Context.getOrUndefined(context, Db) === db ? effect : Effect.provideService(effect, Db, db)
    }) as Effect.Effect<A, E>
  // Reads on the pool retry a lost connection by themselves (a new one is
  // taken); retry_read leaves a transaction's lost connection to the caller.
  const read_on_current = <A, E>(effect: Effect.Effect<A, E, Db>) => retry_read(on_current(effect))

  const cache = Option.getOrUndefined(yield* Effect.serviceOption(SessionCache))
  const standby = yield* StandbyReads
  // what a write tells once committed reaches this repo's subscribers, cache and standby reads
  const told = told_context(events, cache, standby)
  /** A write's events go to this repo's subscribers (and cache), whatever the caller's context holds. */
  const telling = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.provideContext(effect, told) as Effect.Effect<A, E, Exclude<R, SessionEvents | SessionCache>>

  const create_session = Effect.fnUntraced(
    function* (
      account_id: AccountId,
      options: { readonly max_sessions?: number; readonly device?: SessionDevice } = {},
    ) {
      // checked before the transaction opens, so bad input costs no round trip
      const owner = yield* account_id_of(account_id)
      const max_sessions = yield* require_max_sessions(options.max_sessions ?? policy.max_sessions)
      const client_ip = yield* stored_client_ip(options.device?.ip, policy.ip_storage)
      const user_agent = stored_user_agent(options.device?.user_agent)
      const token = yield* generate_session_token
      const id = hash_session_token(token)
      const session = yield* database.transaction(
        Effect.flatMap(operations.create({ id, account_id: owner, client_ip, user_agent }), (created) =>
          Effect.as(operations.enforce_limit(owner, max_sessions, id), created),
        ),
      )
      return { token: Redacted.make(token), session }
    },
    telling,
    traced("create_session"),
  )

  /** The session as the primary has it (where a write just went), judged now. */
  const read_primary = (id: string) =>
    retry_read(Effect.flatMap(current_handle, (db) => operations.check_on(db, id)))

  /**
   * With standby reads, outside a transaction: the standby's answer when it
   * is "valid" and the standby is recent enough (standby-reads.ts); anything
   * else (not found, ended, not recent, an error) is asked of the primary,
   * so a standby behind on a create, a touch or an extension never rejects.
   */
  const read =
    standby === undefined
      ? read_primary
      : (id: string): Effect.Effect<SessionCheck, DbError> =>
          Effect.contextWith((context: Context.Context<never>) => {
            const fence = Context.getOrUndefined(context, Tx) === undefined ? standby.fence() : undefined
            if (fence === undefined) return read_primary(id)
            return Effect.flatMap(
              Effect.orElseSucceed(operations.check_on_standby(standby.handle, id, fence), () => undefined),
              (checked) => (checked?.valid === true ? Effect.succeed(checked) : read_primary(id)),
            )
          })

  // Cache misses whose read is in flight, by session: a validation that
  // misses the same session meanwhile waits for that read instead of sending
  // its own (a page's parallel requests, or every reading ending at its
  // maximum age, would otherwise each read the row).
  const misses = new Map<string, MissInFlight>()

  /**
   * The session read after a cache miss: a valid reading is kept unless an
   * invalidation overtook the read; none read inside a transaction is kept
   * (it may not be committed). The cache takes the standbys' place. A read
   * of the session already in flight is joined if no invalidation of it
   * arrived since it began (then it tells as much as a new read would,
   * within the cache's own guarantee); else, or if that read was
   * interrupted, the row is read again.
   */
  const read_on_miss = (
    cache: SessionCacheShape,
    context: Context.Context<never>,
    id: string,
    now: number,
  ): Effect.Effect<SessionCheck, DbError> => {
    if (Context.getOrUndefined(context, Tx) !== undefined) return read_primary(id)
    const in_flight = misses.get(id)
    if (in_flight !== undefined && cache.current(id, in_flight.begun))
      return Effect.flatMap(
        Effect.callback<Exit.Exit<SessionCheck, DbError>>((resume) => {
          in_flight.waiting.push((exit) => resume(Effect.succeed(exit)))
        }),
        // an interrupted read told nothing: read again
        (exit) => (Exit.hasInterrupts(exit) ? read_on_miss(cache, context, id, now) : exit),
      )
    const begun = cache.begin_read()
    const flight: MissInFlight = { begun, waiting: [] }
    misses.set(id, flight)
    // from the primary, never a standby: a standby's reading may predate an
    // invalidation that arrived before the read began, and would then be kept
    const read = Effect.map(read_primary(id), (checked) => {
      if (checked.valid) cache.keep(id, checked.session, begun, now)
      return checked
    })
    // the waiting validations are resumed here, in this fiber's own step:
    // awaiting a Deferred or a Fiber would resume each through the scheduler
    return Effect.onExit(read, (exit) =>
      Effect.sync(() => {
        if (misses.get(id) === flight) misses.delete(id)
        for (const resume of flight.waiting) resume(exit)
      }),
    )
  }

  /**
   * The cache's reading of session `id` if it is kept and still valid at
   * `now`. Never inside a transaction, which must see its own changes.
   */
  const cached_check = (
    cache: SessionCacheShape,
    context: Context.Context<never>,
    id: string,
    now: number,
  ) => {
    if (Context.getOrUndefined(context, Tx) !== undefined) return undefined
    const kept = cache.lookup(id, now)
    const judged = kept === undefined ? undefined : operations.judge(kept, now)
    session_cache_lookups(judged?.valid === true ? "hit" : "miss").updateUnsafe(1, context)
    return judged?.valid === true ? judged : undefined
  }

  /**
   * `authenticate`'s work, a rejection returned rather than failed: failing
   * and catching costs `validate` (which drops the reason) on every call. No
   * generator on the common path (a read, nothing due): it runs on every
   * request. A cache hit with nothing due is answered in this one step, and
   * without a span, which would cost about as much as the rest of the hit
   * (the lookups counter counts hits); what goes to the database has the
   * span `SessionRepo.<name>`.
   */
  const authenticate_or_reason = (
    token: TokenInput,
    name: "authenticate" | "validate",
  ): Effect.Effect<Authenticated | SessionRejectionReason, DbError> =>
    Effect.contextWith((context: Context.Context<never>) => {
      // counted here, not by Metric.update: one step less on every request
      const counted = (outcome: Authenticated | SessionRejectionReason) => {
        session_validations(typeof outcome === "string" ? outcome : "valid").updateUnsafe(1, context)
        return outcome
      }
      const id = hash_of(token)
      if (id === undefined) return Effect.succeed(counted("malformed"))
      if (cache !== undefined) {
        const now = Context.get(context, Clock.Clock).currentTimeMillisUnsafe()
        const hit = cached_check(cache, context, id, now)
        if (hit?.due === "none") return Effect.succeed(counted({ session: hit.session, extended: false }))
        const checked = hit !== undefined ? Effect.succeed(hit) : read_on_miss(cache, context, id, now)
        return traced_leaf(context, name, Effect.map(Effect.flatMap(checked, answer(id)), counted))
      }
      return traced_leaf(context, name, Effect.map(Effect.flatMap(read(id), answer(id)), counted))
    })

  /** What a validation answers for the session `checked`: its rejection, or it (after its due write). */
  const answer =
    (id: string) =>
    (checked: SessionCheck): Effect.Effect<Authenticated | SessionRejectionReason, DbError> =>
      !checked.valid
        ? rejection(id, checked.reason)
        : checked.due === "none"
          ? Effect.succeed({ session: checked.session, extended: false })
          : write_due(id, checked.session, checked.due)

  /** A session found ended is deleted in the background, which tells its end once. */
  const rejection = (id: string, reason: SessionRejectionReason): Effect.Effect<SessionRejectionReason> =>
    reason === "unknown" || reason === "malformed"
      ? Effect.succeed(reason)
      : Effect.as(touches.end(id, reason), reason)

  /** A valid session's due touch (started in the background) or extension (waited for). */
  const write_due = Effect.fnUntraced(function* (
    id: string,
    session: AuthSession,
    due: "touch" | "extend",
  ): Effect.fn.Return<Authenticated | SessionRejectionReason, DbError> {
    // the reading kept is about to be stale: the next validation reads the row
    cache?.forget([id])
    if (due === "touch") {
      yield* touches.touch(id)
      return { session, extended: false }
    }
    // Rare (once per extend threshold): wait, so the caller can re-send the
    // cookie with the expiry the row really has. Inside a transaction, write
    // it there: a touch on the pool could wait for this very transaction.
    const extended = Option.isSome(yield* Effect.serviceOption(Tx))
      ? Option.fromUndefinedOr(yield* telling(on_current(operations.touch(id))))
      : yield* touches.touch_and_wait(id)
    // Only a moved expiry counts: a touch already in flight when this request
    // came, which this one joined, may have written last_seen_at only.
    if (Option.isNone(extended) || extended.value.getTime() === session.expires_at.getTime()) {
      // Not moved here: another request's write got there between this read
      // and this write (or the write failed). Read the row again, so the
      // caller still re-sends a cookie that expires with the row.
      const current = yield* read_primary(id)
      if (!current.valid) return current.reason
      const moved = current.session.expires_at.getTime() !== session.expires_at.getTime()
      return { session: current.session, extended: moved }
    }
    const now = new Date(yield* Clock.currentTimeMillis)
    return { session: { ...session, expires_at: extended.value, last_seen_at: now }, extended: true }
  })

  const authenticate = (token: TokenInput) =>
    Effect.flatMap(authenticate_or_reason(token, "authenticate"), (outcome) =>
      typeof outcome === "string" ? rejected(outcome) : Effect.succeed(outcome),
    )

  const validate = (token: TokenInput) =>
    Effect.map(authenticate_or_reason(token, "validate"), (outcome) =>
      typeof outcome === "string" ? Option.none<AuthSession>() : Option.some(outcome.session),
    )

  /**
   * Runs `write` (an UPDATE that changes only a valid session) on the token's
   * session; when it changed nothing, fails with the reason the session is
   * not valid (a rare path, so a second read is fine).
   */
  const write_valid_session = Effect.fnUntraced(function* (
    token: TokenInput,
    write: (id: string) => Effect.Effect<AuthSession | undefined, DbError, Db>,
  ) {
    const id = hash_of(token)
    if (id === undefined) return yield* rejected("malformed")
    const session = yield* on_current(write(id))
    if (session !== undefined) return session
    const checked = yield* read_primary(id)
    return yield* rejected(checked.valid ? "unknown" : checked.reason)
  })

  const reauthenticate = Effect.fnUntraced(
    function* (token: TokenInput) {
      const session = yield* write_valid_session(token, operations.reauthenticate)
      return { session, extended: true }
    },
    telling,
    traced("reauthenticate"),
  )

  const rotate = Effect.fnUntraced(
    function* (token: TokenInput) {
      const new_token = yield* generate_session_token
      const new_id = hash_session_token(new_token)
      const session = yield* write_valid_session(token, (id) => operations.rotate(id, new_id))
      return { token: Redacted.make(new_token), session }
    },
    telling,
    traced("rotate"),
  )

  const revoke = (token: TokenInput, options: RevokeOptions = {}) =>
    Effect.flatMap(require_revoke_reason(options.reason, "logout"), (reason) => {
      const id = hash_of(token)
      return id === undefined ? Effect.void : Effect.asVoid(on_current(operations.revoke_by_hash(id, reason)))
    }).pipe(telling, traced("revoke"))

  const revoke_for_account = Effect.fnUntraced(
    function* (session_id: string, account_id: AccountId, options: RevokeOptions = {}) {
      const id = yield* require_token_hash(session_id)
      const owner = yield* account_id_of(account_id)
      const reason = yield* require_revoke_reason(options.reason, "owner")
      return yield* on_current(operations.revoke_for_account(id, owner, reason))
    },
    telling,
    traced("revoke_for_account"),
  )

  const revoke_all_for_account = Effect.fnUntraced(
    function* (account_id: AccountId, options: RevokeOptions = {}) {
      const owner = yield* account_id_of(account_id)
      const reason = yield* require_revoke_reason(options.reason, "owner")
      return yield* on_current(operations.revoke_all_for_account(owner, reason))
    },
    telling,
    traced("revoke_all_for_account"),
  )

  const revoke_others_for_account = Effect.fnUntraced(
    function* (account_id: AccountId, keep_session_id: string, options: RevokeOptions = {}) {
      const owner = yield* account_id_of(account_id)
      const keep = yield* require_token_hash(keep_session_id)
      const reason = yield* require_revoke_reason(options.reason, "owner")
      return yield* on_current(operations.revoke_others_for_account(owner, keep, reason))
    },
    telling,
    traced("revoke_others_for_account"),
  )

  const list_for_account = Effect.fnUntraced(function* (
    account_id: AccountId,
    options: { readonly limit?: number } = {},
  ) {
    const owner = yield* account_id_of(account_id)
    const limit = yield* require_list_limit(options.limit ?? 50)
    return yield* read_on_current(operations.list_for_account(owner, limit))
  }, traced("list_for_account"))

  const list_all_active = Effect.fnUntraced(function* (options: { readonly limit?: number } = {}) {
    const limit = yield* require_list_limit(options.limit ?? 200)
    return yield* read_on_current(operations.list_all_active(limit))
  }, traced("list_all_active"))

  const cleanup_expired = Effect.fnUntraced(
    function* () {
      yield* require_cleanup_batch_size(policy.cleanup_batch_size)
      return yield* on_current(operations.cleanup_expired())
    },
    telling,
    traced("cleanup_expired"),
  )

  return SessionRepo.of({
    create_session,
    authenticate,
    validate,
    reauthenticate,
    rotate,
    revoke,
    revoke_for_account,
    revoke_all_for_account,
    revoke_others_for_account,
    list_for_account,
    list_all_active,
    cleanup_expired,
  })
})

// Typed as written, so the published declaration keeps `SessionRepoShape`'s
// registered ids (an inferred base would be frozen to the standalone ones).
const SessionRepoService: Context.ServiceClass<
  SessionRepo,
  "effect-session-repo/SessionRepo",
  SessionRepoShape
> = Context.Service<SessionRepo, SessionRepoShape>()("effect-session-repo/SessionRepo")

/** The session service applications use; its methods hide `Db` and `Tx`. */
export class SessionRepo extends SessionRepoService {
  /**
   * `SessionRepo` on `table`: your session table, registered (see
   * `Register`), or the standalone `auth_session`. It reads `SessionPolicy`
   * once, when built, and also provides `SessionTouches`, `SessionEvents`
   * (the lifecycle events of its sessions, buffered per subscriber up to
   * `events_capacity`) and `CurrentSessionTable` (the query functions then
   * run on the same table). Needs a database layer.
   */
  static readonly layer = (
    table: RegisteredSessionTable,
    options: { readonly events_capacity?: number } = {},
  ): Layer.Layer<
    SessionRepo | SessionTouches | SessionEvents | CurrentSessionTable,
    never,
    Database | Db | SessionPolicy
  > => repo_layer(table, options.events_capacity, Layer.empty)

  /**
   * `SessionRepo.layer` with a validation cache (see `SessionCacheOptions`
   * and the README): validations of a session this process read valid are
   * served from memory, and every change of it, committed anywhere, reaches
   * the cache by a notification. Needs the table's notifying trigger
   * (`session_change_trigger_sql`) and `Notifications` (the driver layers
   * provide it); fails when built without either working.
   */
  static readonly layer_cached = (
    table: RegisteredSessionTable,
    options: { readonly events_capacity?: number; readonly cache?: SessionCacheOptions } = {},
  ): Layer.Layer<
    SessionRepo | SessionTouches | SessionEvents | SessionCache | CurrentSessionTable,
    DbError,
    Database | Db | SessionPolicy | Notifications
  > =>
    repo_layer(
      table,
      options.events_capacity,
      Layer.effect(SessionCache, listening_session_cache(table, options.cache)),
    )
}

/** The repo and what it provides, with `cache` (a SessionCache, or nothing) given to the repo and its touches. */
const repo_layer = <Cache, E, R>(
  table: RegisteredSessionTable,
  events_capacity: number | undefined,
  cache: Layer.Layer<Cache, E, R>,
) =>
  Layer.effect(SessionRepo, make).pipe(
    // fresh: layers are shared by reference, and these touches write to this table
    Layer.provideMerge(Layer.fresh(SessionTouches.layer)),
    Layer.provideMerge(cache),
    Layer.provideMerge(SessionEvents.layer(events_capacity)),
    Layer.provideMerge(layer_current_session_table(table)),
  )
