import { Duration, Effect, Layer, Schedule } from "effect"
import { SessionRepo } from "./repo.js"

/**
 * One cleanup pass that never fails: a failed pass is logged and the next one
 * tries again, so the schedule survives a database outage.
 */
export const session_cleanup_pass: Effect.Effect<void, never, SessionRepo> = SessionRepo.use((repo) =>
  repo.cleanup_expired(),
).pipe(
  Effect.tap((deleted) => Effect.logDebug("expired sessions deleted", { deleted })),
  Effect.catchCause((cause) => Effect.logWarning("session cleanup failed", cause)),
  Effect.asVoid,
)

/**
 * Runs the batched cleanup every `interval` for as long as the layer lives.
 * Safe on several instances at once (batches use SKIP LOCKED).
 */
export const layer_session_cleanup = (
  interval: Duration.Input = Duration.minutes(10),
): Layer.Layer<never, never, SessionRepo> =>
  Layer.effectDiscard(Effect.forkScoped(Effect.repeat(session_cleanup_pass, Schedule.spaced(interval))))
