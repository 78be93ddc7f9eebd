import { Context } from "effect"
import type pg from "pg"
import { pool_connections } from "./metrics.js"

const POOL_EVENTS = ["connect", "acquire", "release", "remove"] as const

/**
 * Keeps the pool gauges (open, idle and waiting) current: sampled after each
 * of the pool's events, once per tick however many came (the counts settle
 * after the event is emitted). Returns the function that stops it.
 */
export const watch_pool = (pool: pg.Pool): (() => void) => {
  const registry = Context.empty()
  let scheduled = false
  const sample = () => {
    scheduled = false
    pool_connections("open").updateUnsafe(pool.totalCount, registry)
    pool_connections("idle").updateUnsafe(pool.idleCount, registry)
    pool_connections("waiting").updateUnsafe(pool.waitingCount, registry)
  }
  const schedule = () => {
    if (scheduled) return
    scheduled = true
    queueMicrotask(sample)
  }
  for (const event of POOL_EVENTS) pool.on(event, schedule)
  sample()
  return () => {
    for (const event of POOL_EVENTS) pool.off(event, schedule)
  }
}
