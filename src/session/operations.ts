import { Clock, Effect } from "effect"
import type { DbError } from "../db/errors.js"
import { Db, type Drizzle, Tx } from "../db/handle.js"
import type { AnyAccountId, AuthSession, SessionTableDefinition } from "../schema/session-table.js"
import { session_prefix } from "../token.js"
import { AccountNotFound, type SessionRejectionReason } from "./errors.js"
import { type EndReason, type RevokeReason, type SessionEvent, tell_committed } from "./events.js"
import {
  authenticated_times,
  live_bounds,
  seen_hour,
  session_rejection,
  type TouchDue,
  touch_bounds,
  touch_due,
} from "./expiry.js"
import type { SessionPolicyShape } from "./policy.js"
import { session_statements } from "./statements.js"

// Each session operation once, on input its caller has checked: the public
// edges (SessionRepo and the query functions) check what they are given and
// open their spans, then run these on one table under one policy.

/** A session read by its key: valid now with the write it is due, or why not. */
export type SessionCheck =
  | { readonly valid: true; readonly session: AuthSession; readonly due: TouchDue }
  | { readonly valid: false; readonly reason: SessionRejectionReason }

/** What a new session stores, checked by the caller. */
export interface NewSession {
  readonly id: string
  readonly account_id: AnyAccountId
  /** Capped at the policy's absolute end; the policy's sliding window when absent. */
  readonly expires_at?: Date
  readonly client_ip: string | null
  readonly user_agent: string | null
}

/** A row a statement changed, as a session's event needs it. */
interface ChangedRow {
  readonly id: string
  readonly account_id: AnyAccountId
  readonly client_ip: string | null
  readonly user_agent: string | null
}

/** What every event of one session carries; `session` names it (by default its own key). */
const of_session = (row: ChangedRow, at: Date, session: string = row.id) => ({
  at,
  account_id: row.account_id,
  session: session_prefix(session),
  client_ip: row.client_ip,
  user_agent: row.user_agent,
})

/** Tells `events`, and makes the cache forget the sessions `changed`, once committed; gives `result` back. */
const telling = <A>(
  result: A,
  events: ReadonlyArray<SessionEvent<AnyAccountId>>,
  changed: ReadonlyArray<{ readonly id: string }> = [],
) =>
  Effect.as(
    tell_committed(
      events,
      changed.map((row) => row.id),
    ),
    result,
  )

const make_session_operations = (definition: SessionTableDefinition, policy: SessionPolicyShape) => {
  const statements = session_statements(definition)
  const now_live_bounds = Effect.map(Clock.currentTimeMillis, (now) => live_bounds(policy, now))
  const _count = (rows: ReadonlyArray<{ readonly id: string }>) => rows.length
  const now_date = Effect.map(Clock.currentTimeMillis, (now) => new Date(now))

  /** Inserts a session authenticated now; a missing account is `AccountNotFound`. */
  const create = (session: NewSession): Effect.Effect<AuthSession, AccountNotFound | DbError, Db> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const times = authenticated_times(policy, now)
      const absolute_ms = times.absolute_expires_at.getTime()
      return statements
        .create_session({
          id: session.id,
          account_id: session.account_id,
          now: times.authenticated_at,
          seen_hour: times.seen_hour,
          // no session outlives its absolute end, whatever the caller asked
          expires_at:
            session.expires_at === undefined
              ? times.expires_at
              : new Date(Math.min(session.expires_at.getTime(), absolute_ms)),
          absolute_expires_at: times.absolute_expires_at,
          client_ip: session.client_ip,
          user_agent: session.user_agent,
        })
        .pipe(
          Effect.flatMap((rows) => {
            const created = rows[0] as AuthSession
            return telling(created, [{ ...of_session(created, times.authenticated_at), kind: "created" }])
          }),
          Effect.catchIf(
            (error) => error.reason === "foreign_key_violation",
            () =>
              // the id stays out of the message: a text key may be an email
              Effect.fail(
                new AccountNotFound({
                  account_id: session.account_id,
                  message: "the account does not exist",
                }),
              ),
          ),
        )
    })

  /** The session read at `now`: valid with the write it is due, or why not. */
  const judge = (session: AuthSession | undefined, now: number): SessionCheck => {
    if (session === undefined) return { valid: false, reason: "unknown" }
    const reason = session_rejection(session, policy, now)
    return reason === undefined
      ? { valid: true, session, due: touch_due(session, policy, now) }
      : { valid: false, reason }
  }

  /**
   * One read by key on `db`, judged by the policy: no span, no write, and
   * no generator (every request runs it; bench/profile.ts counts its cost).
   */
  const check_on = (db: Drizzle, id: string): Effect.Effect<SessionCheck, DbError> =>
    Effect.flatMap(statements.session_get.on(db, { id }), (rows) =>
      Clock.clockWith((clock) => Effect.succeed(judge(rows[0], clock.currentTimeMillisUnsafe()))),
    )

  /** `check_on` a standby's handle, which answers only when it has replayed the primary's WAL to `fence`. */
  const check_on_standby = (db: Drizzle, id: string, fence: string): Effect.Effect<SessionCheck, DbError> =>
    Effect.flatMap(statements.session_get_on_standby.on(db, { id, fence }), (rows) =>
      Clock.clockWith((clock) => Effect.succeed(judge(rows[0], clock.currentTimeMillisUnsafe()))),
    )

  /** `check_on` the handle in `Db`. */
  const check = (id: string): Effect.Effect<SessionCheck, DbError, Db> => Db.use((db) => check_on(db, id))

  /** Writes a due touch or extension of a valid session; its `expires_at` after the write, if written. */
  const touch = Effect.fnUntraced(function* (id: string): Effect.fn.Return<Date | undefined, DbError, Db> {
    const bounds = touch_bounds(policy, yield* Clock.currentTimeMillis)
    const row = (yield* statements.session_touch({ id, ...bounds }))[0]
    if (row?.moved === true)
      yield* tell_committed([{ ...of_session(row, bounds.now), kind: "extended" }], [row.id])
    return row?.expires_at
  })

  /** A valid session counted as authenticated now, with its expiries restarted; undefined if not valid. */
  const reauthenticate = Effect.fnUntraced(function* (
    id: string,
  ): Effect.fn.Return<AuthSession | undefined, DbError, Db> {
    const now = yield* Clock.currentTimeMillis
    const { expires_at, absolute_expires_at, seen_hour } = authenticated_times(policy, now)
    const rows = yield* statements.session_reauthenticate({
      id,
      ...live_bounds(policy, now),
      seen_hour,
      expires_at,
      absolute_expires_at,
    })
    const session = rows[0]
    if (session !== undefined)
      yield* tell_committed([{ ...of_session(session, new Date(now)), kind: "reauthenticated" }], [id])
    return session
  })

  /** A valid session moved to the key `new_id`; undefined if not valid. */
  const rotate = Effect.fnUntraced(function* (
    id: string,
    new_id: string,
  ): Effect.fn.Return<AuthSession | undefined, DbError, Db> {
    const bounds = yield* now_live_bounds
    const session = (yield* statements.session_rotate({ id, new_id, ...bounds }))[0]
    if (session !== undefined)
      yield* tell_committed([{ ...of_session(session, bounds.now, id), kind: "rotated" }], [id])
    return session
  })

  /**
   * Locks the account row, then deletes its ended sessions and the live ones
   * past the newest `max_sessions` (`keep` ranks first); returns how many.
   */
  const enforce_limit = (
    account_id: AnyAccountId,
    max_sessions: number,
    keep: string,
  ): Effect.Effect<number, DbError, Db | Tx> =>
    Tx.use(() =>
      Effect.flatMap(statements.session_enforce_limit_lock({ account_id }), () =>
        // a new statement: under READ COMMITTED it sees everything committed before the lock was granted
        Effect.flatMap(now_live_bounds, (bounds) =>
          Effect.flatMap(
            statements.session_enforce_limit({ account_id, ...bounds, max_sessions, keep }),
            (rows) =>
              telling(
                rows.length,
                rows
                  .filter((row) => row.live)
                  .map(
                    (row): SessionEvent<AnyAccountId> => ({
                      ...of_session(row, bounds.now),
                      kind: "evicted",
                    }),
                  ),
                rows,
              ),
          ),
        ),
      ),
    )

  const list_for_account = Effect.fnUntraced(function* (account_id: AnyAccountId, limit: number) {
    return yield* statements.session_list_for_account({ account_id, limit, ...(yield* now_live_bounds) })
  })

  const list_all_active = Effect.fnUntraced(function* (limit: number) {
    const bounds = yield* now_live_bounds
    const idle_hour = bounds.idle_before === null ? null : seen_hour(bounds.idle_before.getTime())
    return yield* statements.session_list_all_active({ limit, ...bounds, idle_hour })
  })

  /** The `revoked` events of deleted sessions. */
  const revoked = (rows: ReadonlyArray<ChangedRow>, at: Date, reason: RevokeReason) =>
    rows.map(
      (row): SessionEvent<AnyAccountId> => ({
        ...of_session(row, at),
        kind: "revoked",
        reason,
      }),
    )

  const revoke_by_hash = (id: string, reason: RevokeReason) =>
    Effect.flatMap(now_date, (now) =>
      Effect.flatMap(statements.session_revoke_by_hash({ id, now, reason }), (rows) =>
        telling(rows.length, revoked(rows, now, reason), rows),
      ),
    )

  const revoke_for_account = (id: string, account_id: AnyAccountId, reason: RevokeReason) =>
    Effect.flatMap(now_date, (now) =>
      Effect.flatMap(statements.session_revoke_for_account({ id, account_id, now, reason }), (rows) =>
        telling(rows.length > 0, revoked(rows, now, reason), rows),
      ),
    )

  const revoke_all_for_account = (account_id: AnyAccountId, reason: RevokeReason) =>
    Effect.flatMap(now_date, (now) =>
      Effect.flatMap(statements.session_revoke_all_for_account({ account_id, now, reason }), (rows) =>
        telling(
          rows.length,
          rows.length === 0 ? [] : [{ kind: "revoked_all", at: now, account_id, reason, count: rows.length }],
          rows,
        ),
      ),
    )

  const revoke_others_for_account = (account_id: AnyAccountId, keep: string, reason: RevokeReason) =>
    Effect.flatMap(now_date, (now) =>
      Effect.flatMap(
        statements.session_revoke_others_for_account({ account_id, keep, now, reason }),
        (rows) =>
          telling(
            rows.length,
            rows.length === 0
              ? []
              : [
                  {
                    kind: "revoked_others",
                    at: now,
                    account_id,
                    reason,
                    count: rows.length,
                    session: session_prefix(keep),
                  },
                ],
            rows,
          ),
      ),
    )

  /**
   * Deletes a session a validation found ended, if it still is; the one
   * deletion that happens tells `ended`.
   */
  const end = (id: string, reason: EndReason) =>
    Effect.flatMap(now_live_bounds, (bounds) =>
      Effect.flatMap(statements.session_end({ id, reason, ...bounds }), (rows) =>
        telling(
          undefined,
          rows.map(
            (row): SessionEvent<AnyAccountId> => ({ ...of_session(row, bounds.now), kind: "ended", reason }),
          ),
          rows,
        ),
      ),
    )

  /**
   * Deletes expired sessions in batches of the policy's size, each its own
   * short statement, until a batch comes back short; returns the total.
   * `on_batch` sees each batch's count and the running total.
   */
  const cleanup_expired = Effect.fnUntraced(function* (
    on_batch?: (deleted: number, total: number) => Effect.Effect<void>,
  ): Effect.fn.Return<number, DbError, Db> {
    const batch_size = policy.cleanup_batch_size
    const now = new Date(yield* Clock.currentTimeMillis)
    let total = 0
    while (true) {
      const rows = yield* statements.session_cleanup_expired({ now, batch_size })
      const deleted = rows.length
      if (deleted > 0) yield* telling(undefined, [{ kind: "swept", at: now, count: deleted }], rows)
      total += deleted
      if (on_batch !== undefined) yield* on_batch(deleted, total)
      if (deleted < batch_size) return total
    }
  })

  return {
    create,
    check,
    check_on,
    check_on_standby,
    judge,
    touch,
    reauthenticate,
    rotate,
    enforce_limit,
    list_for_account,
    list_all_active,
    revoke_by_hash,
    revoke_for_account,
    revoke_all_for_account,
    revoke_others_for_account,
    end,
    cleanup_expired,
  }
}

export type SessionOperations = ReturnType<typeof make_session_operations>

const made = new WeakMap<SessionTableDefinition, WeakMap<SessionPolicyShape, SessionOperations>>()

/** The operations on `definition`'s table under `policy`, made once per pair. */
export const session_operations = (
  definition: SessionTableDefinition,
  policy: SessionPolicyShape,
): SessionOperations => {
  let by_policy = made.get(definition)
  if (by_policy === undefined) {
    by_policy = new WeakMap()
    made.set(definition, by_policy)
  }
  let operations = by_policy.get(policy)
  if (operations === undefined) {
    operations = make_session_operations(definition, policy)
    by_policy.set(policy, operations)
  }
  return operations
}
