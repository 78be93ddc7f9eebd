// A child process of bench/revocation.ts: an application process with the
// validation cache. It validates its parent's tokens in a loop, from many
// callers at once, and records per token when it last returned a session
// and when it first rejected it; the parent compares these with the times
// of its revokes. IPC: "ready" out (every token in the cache); "at" (the
// next revocation) and "stop" in; the records out. Any failure exits
// non-zero, so the parent sees it.
import { readFileSync } from "node:fs"
import { Effect, Layer, ManagedRuntime, Option, Redacted } from "effect"
import { auth_session, layer_postgres, layer_session_policy, SessionRepo } from "./package.ts"

export interface WorkerConfig {
  readonly url: string
  /** A JSON array of tokens, written by the parent: those it will revoke first, in the order it will. */
  readonly tokens_file: string
  readonly max_age_ms: number
  /** Validations in flight at once. */
  readonly concurrency: number
  /** Validations per second at most (0: as many as the CPU allows). */
  readonly rate: number
  /** Validations that returned a session remembered per token: the parent counts those after its revoke. */
  readonly ring: number
}

export interface WorkerResults {
  readonly type: "results"
  readonly validations: number
  readonly seconds: number
  /** Per token: the last validation that returned a session, its call's start and end (NaN: none). */
  readonly last_some_start: Float64Array
  readonly last_some_end: Float64Array
  /** Per token: the first validation that returned none (NaN: none). */
  readonly first_none_start: Float64Array
  readonly first_none_end: Float64Array
  /** Per token i, at [i * RING, (i + 1) * RING): the call starts of its last RING validations that returned a session (NaN: unused). */
  readonly some_starts: Float64Array
  /** The longest time between two validations ending, ms: a stall of this process (CPU, GC), when no notification is read either. */
  readonly max_pause_ms: number
  /** Validations that returned a session though begun after one of the same token had returned none (must be 0). */
  readonly resurrected: number
}

/** Wall time in ms with sub-ms precision, comparable between processes of one machine. */
const wall = () => performance.timeOrigin + performance.now()

/** Lets the event loop poll for I/O, as a server between requests: the listener's notifications are I/O. */
const next_turn = () => new Promise<void>((resolve) => setImmediate(resolve))
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const fail = (error: unknown) => {
  console.error("revocation worker:", error)
  process.exit(1)
}
process.on("uncaughtException", fail)
process.on("unhandledRejection", fail)
// the parent gone (it crashed, or we are done): nothing left to report to
process.on("disconnect", () => process.exit(0))

const config = JSON.parse(process.argv[2] ?? "") as WorkerConfig
const tokens = JSON.parse(readFileSync(config.tokens_file, "utf8")) as Array<string>
const n = tokens.length
const RING = config.ring

const runtime = ManagedRuntime.make(
  SessionRepo.layer_cached(auth_session, {
    // room for every token: an eviction would look like a slow invalidation
    cache: { max_age_ms: config.max_age_ms, max_entries: 2 * n },
  }).pipe(
    Layer.provide(layer_session_policy()),
    Layer.provideMerge(layer_postgres({ url: Redacted.make(config.url), pool_size: 4 })),
  ),
)
const repo = await runtime.runPromise(SessionRepo.use(Effect.succeed))

const last_some_start = new Float64Array(n).fill(Number.NaN)
const last_some_end = new Float64Array(n).fill(Number.NaN)
const first_none_start = new Float64Array(n).fill(Number.NaN)
const first_none_end = new Float64Array(n).fill(Number.NaN)
const some_starts = new Float64Array(n * RING).fill(Number.NaN)
const ring_next = new Uint32Array(n)
let resurrected = 0
let validations = 0
let last_end = Number.NaN
let max_pause_ms = 0

/**
 * Validates token `i` once and records the outcome. Calls overlap and may
 * end out of order: the latest-begun success and the earliest-begun
 * rejection are kept.
 */
const validate = async (i: number) => {
  const start = wall()
  const session = await runtime.runPromise(repo.validate(tokens[i] as string))
  const end = wall()
  validations++
  if (end - last_end > max_pause_ms) max_pause_ms = end - last_end
  last_end = end
  if (Option.isSome(session)) {
    // begun after a rejection had returned: a session back from the dead
    if (start > (first_none_end[i] as number)) resurrected++
    if (!(start <= (last_some_start[i] as number))) {
      last_some_start[i] = start
      last_some_end[i] = end
    }
    some_starts[i * RING + ((ring_next[i] as number) % RING)] = start
    ring_next[i] = (ring_next[i] as number) + 1
  } else if (!(start >= (first_none_start[i] as number))) {
    first_none_start[i] = start
    first_none_end[i] = end
  }
}

// Every token once: each is in the cache before the parent starts revoking.
for (let i = 0; i < n; i += config.concurrency)
  await Promise.all(Array.from({ length: Math.min(config.concurrency, n - i) }, (_, k) => validate(i + k)))

// Where to look: the tokens arrive in the order the parent revokes them,
// and before each revoke the parent says which one is next ("at"). Most calls
// go to the window of the tokens up to AHEAD past that one that this worker
// has not yet seen rejected: the next few to be revoked (so each has a fresh
// success just before its revoke) and those revoked but still served (so
// every stale success is seen, however late the notification). Each is then
// validated every few ms, the resolution of the delay measured; sweeping all
// 2,000 would take tenths of a second per token on a small machine. The cache
// does not know the order: it serves the window as it serves any token.
// Every 8th call sweeps all tokens instead, rejected ones too: each is
// validated now and then, and one that returns after a rejection is counted
// (`resurrected`).
// 24 ms of revokes at 3 ms: a wider window spreads the calls over more
// tokens, each then observed less often (16 doubled the delays measured)
const AHEAD = 8
let announced = 0
// every token before `low` was seen rejected
let low = 0
let window_cursor = 0
let sweep_cursor = 0
let calls = 0
let stopping = false

const seen_rejected = (i: number) => !Number.isNaN(first_none_start[i] as number)

const pick = (): number => {
  if (++calls % 8 !== 0) {
    while (low < n && seen_rejected(low)) low++
    const high = Math.min(n, announced + AHEAD)
    for (let tries = high - low; tries > 0; tries--) {
      const i = low + (window_cursor++ % (high - low))
      if (!seen_rejected(i)) return i
    }
  }
  return sweep_cursor++ % n
}

// Each caller paced to its share of the rate: four workers flat out on a
// small machine starve PostgreSQL and each other, and the delays measured
// become the CPU scheduler's. Uncapped, each call yields one turn of the loop.
const period_ms = config.rate > 0 ? (1000 * config.concurrency) / config.rate : 0
const caller = async (k: number) => {
  let next = wall() + (k * period_ms) / config.concurrency
  while (!stopping) {
    const i = pick()
    await validate(i)
    if (period_ms === 0) await next_turn()
    else {
      next = Math.max(next + period_ms, wall())
      await sleep(next - wall())
    }
  }
}

// the loop's own figures, without the warm-up
validations = 0
max_pause_ms = 0
const started = wall()
const callers = Promise.all(Array.from({ length: config.concurrency }, (_, k) => caller(k)))

process.on("message", (message: { type: string; next?: number }) => {
  if (message.type === "at") announced = message.next ?? announced
  if (message.type !== "stop") return
  stopping = true
  void (async () => {
    await callers
    const results: WorkerResults = {
      type: "results",
      validations,
      seconds: (wall() - started) / 1000,
      last_some_start,
      last_some_end,
      first_none_start,
      first_none_end,
      some_starts,
      max_pause_ms,
      resurrected,
    }
    // the parent forks with "advanced" serialization: typed arrays and NaN arrive as they are
    await new Promise<void>((resolve, reject) =>
      process.send?.(results, undefined, undefined, (error) => (error ? reject(error) : resolve())),
    )
    await runtime.dispose()
    process.disconnect()
  })().catch(fail)
})

process.send?.({ type: "ready" })
