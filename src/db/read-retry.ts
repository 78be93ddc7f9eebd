import { Effect, Option, Schedule } from "effect"
import { DbError, is_connection_failure } from "./errors.js"
import { Tx } from "./handle.js"

/**
 * How long an idempotent read keeps retrying while its connection keeps
 * failing: long enough to ride out a server restart (about 2 s here), short
 * enough for a request to fail while its client still waits. A caller sees
 * the failure only when the database stays unreachable this long; the last
 * attempt may add up to one connect timeout.
 */
export const READ_RETRY_WINDOW_MS = 5000

// at once, then 20 ms doubling up to 500 ms, each delay jittered (±20 %) so
// the callers a failover cut off do not come back in lockstep
const read_retry_schedule = Schedule.min([
  Schedule.exponential("20 millis"),
  Schedule.spaced("500 millis"),
]).pipe(Schedule.jittered, Schedule.upTo({ duration: READ_RETRY_WINDOW_MS }))

const is_lost_connection = (error: unknown): boolean =>
  error instanceof DbError && is_connection_failure(error.reason)

/**
 * `read` retried when its connection was lost or could not be made. Only for
 * statements that change nothing: a write whose connection dropped may have
 * happened, and is reported instead. Inside a transaction nothing is retried:
 * the lost connection was the transaction's.
 */
export const retry_read = <A, E, R>(read: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  // the schedule is set up only after a failure: a read that succeeds (nearly
  // every one) pays for one failure handler, not for a retry driver
  Effect.catchIf(read, is_lost_connection, (error) =>
    Effect.flatMap(Effect.serviceOption(Tx), (tx) =>
      Option.isSome(tx)
        ? Effect.fail(error)
        : Effect.retry(read, { schedule: read_retry_schedule, while: is_lost_connection }),
    ),
  )
