import { Context } from "effect"
import type pg from "pg"
import { pool_connections } from "./metrics.js"

const POOL_EVENTS = ["connect", "acquire", "release", "remove"] as const

/**
 * How long the gauges may lag the pool: every statement acquires and releases
 * a connection, and sampling after each one cost the hot path more than a
 * scrape interval of staleness is worth.
 */
export const POOL_SAMPLE_DELAY_MS = 50

/**
 * Keeps the pool gauges (open, idle and waiting) current: sampled
 * POOL_SAMPLE_DELAY_MS after the first of the pool's events since the last
 * sample, however many came meanwhile. Returns the function that stops it.
 */
export const watch_pool = (pool: pg.Pool): (() => void) => {
  const registry = Context.empty()
  let timer: ReturnType<typeof setTimeout> | undefined
  const sample = () => {
    timer = undefined
    pool_connections("open").updateUnsafe(pool.totalCount, registry)
    pool_connections("idle").updateUnsafe(pool.idleCount, registry)
    pool_connections("waiting").updateUnsafe(pool.waitingCount, registry)
  }
  const schedule = () => {
    if (timer !== undefined) return
    // never what keeps the process alive
    timer = setTimeout(sample, POOL_SAMPLE_DELAY_MS).unref()
  }
  for (const event of POOL_EVENTS) pool.on(event, schedule)
  sample()
  return () => {
    for (const event of POOL_EVENTS) pool.off(event, schedule)
    clearTimeout(timer)
  }
}
