import { Effect, Semaphore } from "effect"
import type { Drizzle } from "./handle.ts"

// postgres.js pipelines a query onto a busy connection when every connection
// of its pool is busy. Its connection queues then grow by one slot per
// pipelined query and are scanned linearly on every state change, so under
// sustained load each query costs more than the one before (bench: 20,000
// queries/s fell to 6,500 within 18 s). Holding at most pool-size statements
// and transactions in flight keeps every query on an idle connection; the
// rest wait here, in order.
const gates = new WeakMap<Drizzle, Semaphore.Semaphore>()

/** Lets at most `size` statements or transactions run on `pool` at once. */
export const gate_pool = (pool: Drizzle, size: number): void => {
  gates.set(pool, Semaphore.makeUnsafe(size))
}

/** Runs `effect` inside `handle`'s gate, if it is a gated pool (never for a transaction handle). */
export const through_gate = <A, E, R>(handle: Drizzle, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  const gate = gates.get(handle)
  return gate === undefined ? effect : gate.withPermits(1)(effect)
}
