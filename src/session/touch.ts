import { Context, Deferred, Effect, Exit, Layer } from "effect"
import { Db } from "../db/handle.ts"
import { hash_prefix } from "../token.ts"
import { query_session_touch } from "./queries.ts"

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
  /** Waits until every touch started so far (and any started meanwhile) has ended. */
  readonly await_idle: Effect.Effect<void>
  /** Touches in flight now. */
  readonly pending: Effect.Effect<number>
}

/**
 * Tracked fire-and-forget touches. Touches always run on the pool, never in the
 * caller's transaction. When the layer closes, pending touches are finished,
 * not dropped.
 */
export class SessionTouches extends Context.Service<SessionTouches, SessionTouchesShape>()(
  "effect-session-repo/SessionTouches",
) {
  static readonly layer: Layer.Layer<SessionTouches, never, Db> = Layer.effect(
    SessionTouches,
    Effect.gen(function* () {
      const pool = yield* Db
      // One entry per session with a touch in flight, done when that touch ends.
      const in_flight = new Map<string, Deferred.Deferred<void>>()

      const write = (token_hash: string) =>
        query_session_touch(token_hash).pipe(
          Effect.provideService(Db, pool),
          Effect.catchCause((cause) =>
            Effect.logWarning("session touch failed", cause).pipe(
              Effect.annotateLogs({ session: hash_prefix(token_hash) }),
            ),
          ),
        )

      const touch = (token_hash: string) =>
        Effect.suspend(() => {
          if (in_flight.has(token_hash) || in_flight.size >= MAX_PENDING_TOUCHES) return Effect.void
          const done = Deferred.makeUnsafe<void>()
          in_flight.set(token_hash, done)
          const finish = Effect.sync(() => {
            in_flight.delete(token_hash)
            Deferred.doneUnsafe(done, Exit.void)
          })
          // Detached: the caller's end or interruption does not cancel the write.
          return Effect.asVoid(Effect.forkDetach(Effect.ensuring(write(token_hash), finish)))
        })

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
            idle._tag === "Some"
              ? Effect.void
              : Effect.logWarning("session touches still pending at shutdown", { pending: in_flight.size }),
          ),
        ),
      )

      return SessionTouches.of({
        touch,
        await_idle,
        pending: Effect.sync(() => in_flight.size),
      })
    }),
  )
}

/** Touches a session without making the caller wait or fail (see `SessionTouches`). */
export const session_touch_fire_and_forget = (
  token_hash: string,
): Effect.Effect<void, never, SessionTouches> => SessionTouches.use((touches) => touches.touch(token_hash))
