import { Context, Deferred, Effect, Exit, Layer, Metric, Option } from "effect"
import type { DbError } from "../db/errors.js"
import { Db } from "../db/handle.js"
import { session_touches } from "../observability/metrics.js"
import { hash_prefix } from "../token.js"
import { SessionCache } from "./cache.js"
import { CurrentSessionTable } from "./current-session-table.js"
import type { InvalidInput } from "./errors.js"
import { type EndReason, SessionEvents, told_context } from "./events.js"
import { require_token_hash } from "./input.js"
import { session_operations } from "./operations.js"
import { SessionPolicy } from "./policy.js"

/**
 * Touches dropped beyond this many in flight: a dropped touch is only a late
 * `last_seen_at`, rescheduled by the session's next validation.
 */
export const MAX_PENDING_TOUCHES = 10_000

/** How long closing the layer waits for pending touches. */
export const TOUCH_SHUTDOWN_GRACE_MS = 10_000

export interface SessionTouchesShape {
  /**
   * Starts a touch in the background and returns at once; never fails. A touch
   * of a session that already has one in flight is coalesced into it.
   */
  readonly touch: (token_hash: string) => Effect.Effect<void>
  /**
   * Starts a touch (or joins the one in flight) and waits for it: the new
   * `expires_at` if it wrote one, none if nothing was written or it failed
   * (failures are logged, never raised).
   */
  readonly touch_and_wait: (token_hash: string) => Effect.Effect<Option.Option<Date>>
  /**
   * Starts, in the background, the deletion of a session a validation found
   * ended (its `ended` event is told by the deletion, once); never fails.
   */
  readonly end: (token_hash: string, reason: EndReason) => Effect.Effect<void>
  /** Waits until every touch started so far (and any started meanwhile) has ended. */
  readonly await_idle: Effect.Effect<void>
  /** Touches in flight now. */
  readonly pending: Effect.Effect<number>
}

/**
 * Tracked touches of the current session table's sessions, under the policy
 * the layer was built with (`SessionRepo.layer` builds one). They always run
 * on the pool, never in the caller's transaction, and detached from the
 * caller, so a request that ends or is interrupted does not cancel its touch.
 * When the layer closes, pending touches are finished, not dropped. Hashes
 * are taken as they are: callers pass hashes they computed or checked.
 */
export class SessionTouches extends Context.Service<SessionTouches, SessionTouchesShape>()(
  "effect-session-repo/SessionTouches",
) {
  static readonly layer: Layer.Layer<
    SessionTouches,
    never,
    Db | CurrentSessionTable | SessionPolicy | SessionEvents
  > = Layer.effect(
    SessionTouches,
    Effect.gen(function* () {
      const pool = yield* Db
      const events = yield* SessionEvents
      const cache = yield* Effect.serviceOption(SessionCache)
      // What a touch tells once committed reaches the repo's subscribers and
      // cache. No standby waits for it: a touch moves a session's end later
      // and an ended session it deletes is judged ended by the clock anyway,
      // so a standby behind on one never validates what the primary would not.
      const told = Context.add(told_context(events, Option.getOrUndefined(cache), undefined), Db, pool)
      const operations = session_operations(yield* CurrentSessionTable, yield* SessionPolicy)
      // One entry per session with a touch in flight, done with its outcome.
      const in_flight = new Map<string, Deferred.Deferred<Option.Option<Date>>>()

      /** `write` on the pool; a failure is logged (`what` failed) and counted, never raised. */
      const on_pool = <A>(
        what: string,
        token_hash: string,
        write: Effect.Effect<Option.Option<A>, DbError, Db>,
      ) =>
        write.pipe(
          Effect.provideContext(told),
          Effect.catchCause((cause) =>
            Effect.logWarning(`${what} failed`, cause).pipe(
              Effect.annotateLogs({ session: hash_prefix(token_hash) }),
              Effect.andThen(Metric.update(session_touches("failed"), 1)),
              Effect.as(Option.none<A>()),
            ),
          ),
        )

      const write_touch = (token_hash: string) =>
        on_pool(
          "session touch",
          token_hash,
          operations.touch(token_hash).pipe(
            Effect.map(Option.fromUndefinedOr),
            Effect.tap((written) =>
              Metric.update(session_touches(Option.isSome(written) ? "written" : "unchanged"), 1),
            ),
          ),
        )

      /** The write in flight under `key`, started if there is none. */
      const start = (key: string, write: Effect.Effect<Option.Option<Date>>) =>
        Effect.suspend(() => {
          const running = in_flight.get(key)
          if (running !== undefined || in_flight.size >= MAX_PENDING_TOUCHES)
            return Effect.as(
              Metric.update(session_touches(running === undefined ? "dropped" : "coalesced"), 1),
              running,
            )
          const done = Deferred.makeUnsafe<Option.Option<Date>>()
          in_flight.set(key, done)
          const finish = (exit: Exit.Exit<Option.Option<Date>>) =>
            Effect.sync(() => {
              in_flight.delete(key)
              Deferred.doneUnsafe(done, Exit.isSuccess(exit) ? exit : Exit.succeed(Option.none()))
            })
          // Detached: the caller's end or interruption does not cancel the write.
          return Effect.as(Effect.forkDetach(Effect.onExit(write, finish)), done)
        })

      const touch = (token_hash: string) => Effect.asVoid(start(token_hash, write_touch(token_hash)))

      const touch_and_wait = (token_hash: string) =>
        Effect.flatMap(start(token_hash, write_touch(token_hash)), (done) =>
          done === undefined ? Effect.succeed(Option.none<Date>()) : Deferred.await(done),
        )

      const end = (token_hash: string, reason: EndReason) =>
        Effect.asVoid(
          start(
            `end ${token_hash}`,
            on_pool(
              "session end",
              token_hash,
              Effect.as(operations.end(token_hash, reason), Option.none<Date>()),
            ),
          ),
        )

      const await_idle: Effect.Effect<void> = Effect.suspend(() => {
        const next = in_flight.values().next()
        return next.done ? Effect.void : Effect.andThen(Deferred.await(next.value), await_idle)
      })

      // On shutdown, finish what is pending; nothing interrupts the writes. A
      // touch stuck behind a lock may hold shutdown up to the grace period.
      yield* Effect.addFinalizer(() =>
        await_idle.pipe(
          Effect.timeoutOption(TOUCH_SHUTDOWN_GRACE_MS),
          Effect.flatMap((idle) =>
            Option.isSome(idle)
              ? Effect.void
              : Effect.logWarning("session touches still pending at shutdown", { pending: in_flight.size }),
          ),
        ),
      )

      return SessionTouches.of({
        touch,
        touch_and_wait,
        end,
        await_idle,
        pending: Effect.sync(() => in_flight.size),
      })
    }),
  )
}

/**
 * Touches a session without making the caller wait or fail because of the
 * touch (see `SessionTouches`); a malformed hash is `InvalidInput`.
 */
export const session_touch_fire_and_forget = (
  token_hash: string,
): Effect.Effect<void, InvalidInput, SessionTouches> =>
  Effect.flatMap(require_token_hash(token_hash), (id) => SessionTouches.use((touches) => touches.touch(id)))
