// npm run bench:revocation: how long a revoked session is still served by
// the validation caches of other processes (issue 18). Four worker processes
// (bench/revocation-worker.ts) validate the same sessions in a loop through
// SessionRepo.layer_cached, at a capped rate that leaves CPU to PostgreSQL
// and to each other; this process revokes them one at a time through a plain
// repo and compares each revoke's return (its commit) with when each worker
// first rejected the token, and counts the validations that still returned
// the session although they started after the revoke had returned.
// A second run does the same while the workers' listening connections are
// killed a few times: the cache must then be bypassed until it listens again,
// so no session outlives its revoke by more than the cache's max_age_ms.
// PostgreSQL at DATABASE_URL. Writes bench/revocation.json.
// Fails (exit 1) if a session was served past the bound, a revoked one was
// never rejected, a live one was, or one came back after a rejection.
// Knobs: BENCH_SESSIONS, BENCH_REVOCATIONS (e.g. 50 for CI),
// BENCH_REVOKE_INTERVAL_MS, BENCH_CACHE_MAX_AGE_MS, BENCH_WORKER_RATE (0: uncapped).
import { type ChildProcess, fork } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { Effect, ManagedRuntime, Redacted } from "effect"
import {
  admin_client,
  create_database,
  machine,
  raw_pool,
  repo_on,
  restore_seeded_sessions,
  round3,
  seed_sessions,
  server_url,
  write_results,
} from "./harness.ts"
import { generate_session_token, layer_postgres, SessionRepo } from "./package.ts"
import type { WorkerConfig, WorkerResults } from "./revocation-worker.ts"

const SERVER = server_url("bench:revocation")
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 2000)
const REVOCATIONS = Math.min(SESSIONS, Number(process.env.BENCH_REVOCATIONS ?? 1000))
const INTERVAL_MS = Number(process.env.BENCH_REVOKE_INTERVAL_MS ?? 3)
// Short enough that the tail of each run outlasts it, so a session served
// past the bound would be seen; the delay by notification does not depend on it.
const MAX_AGE_MS = Number(process.env.BENCH_CACHE_MAX_AGE_MS ?? 2000)
// Validations per second per worker, at most (0: uncapped; see the worker).
const RATE = Number(process.env.BENCH_WORKER_RATE ?? 4000)
const WORKERS = 4
const CONCURRENCY = 32
/** Listener kills in the second run, spread over its revocations. */
const KILLS = 3
/** A stale validation this much after the revoke is reported on its own. */
const LATE_MS = 50
/** Validations returning a session remembered per token and worker: more stale ones than this per pair are not counted. */
const RING = 64

/** Wall time in ms with sub-ms precision, comparable between processes of one machine. */
const wall = () => performance.timeOrigin + performance.now()

const quantile = (sorted: ReadonlyArray<number>, q: number) =>
  round3(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN)

const shuffled = <A>(xs: ReadonlyArray<A>): Array<A> => {
  const ys = [...xs]
  for (let i = ys.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[ys[i], ys[j]] = [ys[j] as A, ys[i] as A]
  }
  return ys
}

const { url, drop } = await create_database(SERVER, "revocation")
const temp = mkdtempSync(join(tmpdir(), "esr-revocation-"))
// every worker ever started: the finally below ends those still running
const children = new Set<ChildProcess>()

/** A worker process, ready (its cache holds every token) once `ready` resolves. */
const start_worker = (config: WorkerConfig) => {
  const child = fork(
    fileURLToPath(new URL("./revocation-worker.ts", import.meta.url)),
    [JSON.stringify(config)],
    {
      // tsx as a loader, resolved from the repository, as `tsx bench/…` runs this file
      execArgv: ["--import", "tsx"],
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      // typed arrays and NaN travel as they are
      serialization: "advanced",
    },
  )
  children.add(child)
  let expected_exit = false
  // set when the worker ends before it was told to: the revoke loop checks it
  let failure: Error | undefined
  const exited = new Promise<void>((resolve, reject) =>
    child.once("exit", (code, signal) => {
      if (code === 0 && expected_exit) return resolve()
      failure = new Error(`revocation worker ${child.pid} exited with ${code ?? signal}`)
      reject(failure)
    }),
  )
  // kept from being an unhandled rejection until someone awaits it
  exited.catch(() => {})
  const next = <M>(type: string) =>
    Promise.race([
      new Promise<M>((resolve) => {
        const on = (message: { type: string }) => {
          if (message.type !== type) return
          child.off("message", on)
          resolve(message as M)
        }
        child.on("message", on)
      }),
      exited.then(() => Promise.reject(new Error(`revocation worker ${child.pid} exited before "${type}"`))),
    ])
  return {
    ready: next<unknown>("ready"),
    /** Tells the worker that revocation `i` comes next. */
    announce: (i: number) => child.send({ type: "at", next: i }),
    failure: () => failure,
    /** Stops its validations; its records, once it has exited cleanly. */
    stop: async () => {
      expected_exit = true
      const results = next<WorkerResults>("results")
      child.send({ type: "stop" })
      const [records] = await Promise.all([results, exited])
      return records
    },
  }
}

/** Terminates every listening connection on the database; returns how many there were. */
const kill_listeners = async (admin: Awaited<ReturnType<typeof admin_client>>) => {
  const result = await admin.query(
    `SELECT count(pg_terminate_backend(pid))::int AS killed FROM pg_stat_activity
     WHERE application_name = 'effect-session-repo listener' AND datname = current_database()`,
  )
  return Number(result.rows[0]?.killed ?? 0)
}

/**
 * One run: fresh workers with the sessions in their caches, REVOCATIONS
 * revokes INTERVAL_MS apart (killing the listeners KILLS times when `kill`),
 * then a tail longer than the cache's max age; the figures over every
 * (revocation, worker) pair.
 */
const run = async (
  tokens: ReadonlyArray<string>,
  revoker: ManagedRuntime.ManagedRuntime<SessionRepo, unknown>,
  admin: Awaited<ReturnType<typeof admin_client>>,
  kill: boolean,
) => {
  // a fresh random order: the first REVOCATIONS are revoked in it, and the workers watch that order
  const order = shuffled(tokens)
  const tokens_file = join(temp, "tokens.json")
  writeFileSync(tokens_file, JSON.stringify(order))
  const workers = Array.from({ length: WORKERS }, () =>
    start_worker({
      url,
      tokens_file,
      max_age_ms: MAX_AGE_MS,
      concurrency: CONCURRENCY,
      rate: RATE,
      ring: RING,
    }),
  )
  await Promise.all(workers.map((worker) => worker.ready))
  // the workers' loops up to speed before the first revoke
  await sleep(500)

  const kill_at = new Set(
    kill ? Array.from({ length: KILLS }, (_, k) => Math.floor(((k + 1) * REVOCATIONS) / (KILLS + 1))) : [],
  )
  const kills: Array<{ at_revocation: number; killed: number }> = []
  const revoke_end = new Float64Array(REVOCATIONS)
  const first = wall()
  let previous = first - INTERVAL_MS
  for (let i = 0; i < REVOCATIONS; i++) {
    const failed = workers.find((worker) => worker.failure() !== undefined)?.failure()
    if (failed !== undefined) throw failed
    // paced from the previous revoke's start: a slow one is not followed by a burst
    const wait = previous + INTERVAL_MS - wall()
    if (wait > 0) await sleep(wait)
    previous = wall()
    // where the workers look most (see the worker)
    for (const worker of workers) worker.announce(i)
    if (kill_at.has(i)) kills.push({ at_revocation: i, killed: await kill_listeners(admin) })
    await revoker.runPromise(SessionRepo.use((repo) => repo.revoke(order[i] as string)))
    revoke_end[i] = wall()
  }
  const revoking_s = (wall() - first) / 1000
  // a session still served past the bound would show in this tail
  await sleep(MAX_AGE_MS + 250)
  const results = await Promise.all(workers.map((worker) => worker.stop()))

  // over every (revocation, worker) pair; token i is the ith revoked
  const delays_from_start: Array<number> = []
  const delays_from_end: Array<number> = []
  // first rejection's start minus last success's start: how finely the pair was observed
  const gaps: Array<number> = []
  let stale = 0
  let stale_late = 0
  let stale_beyond_bound = 0
  let stale_saturated = 0
  let max_stale_ms = 0
  let never_rejected = 0
  for (const records of results) {
    for (let i = 0; i < REVOCATIONS; i++) {
      const revoked = revoke_end[i] as number
      const rejected = records.first_none_start[i] as number
      if (Number.isNaN(rejected)) never_rejected++
      else {
        delays_from_start.push(rejected - revoked)
        delays_from_end.push((records.first_none_end[i] as number) - revoked)
        gaps.push(rejected - (records.last_some_start[i] as number))
      }
      // the validations that returned the session although they started after the revoke returned
      let count = 0
      for (let k = i * RING; k < (i + 1) * RING; k++) {
        const start = records.some_starts[k] as number
        if (!(start > revoked)) continue
        count++
        if (start > revoked + LATE_MS) stale_late++
        if (start > revoked + MAX_AGE_MS) stale_beyond_bound++
      }
      stale += count
      // the ring was full of them: there may have been more
      if (count === RING) stale_saturated++
      const last_some = records.last_some_start[i] as number
      if (last_some > revoked) max_stale_ms = Math.max(max_stale_ms, last_some - revoked)
    }
  }
  // sessions never revoked must never have been rejected
  let false_rejections = 0
  for (const records of results)
    for (let i = REVOCATIONS; i < order.length; i++)
      if (!Number.isNaN(records.first_none_start[i] as number)) false_rejections++

  const figures = (xs: Array<number>) => {
    xs.sort((x, y) => x - y)
    return { p50: quantile(xs, 0.5), p99: quantile(xs, 0.99), max: quantile(xs, 1) }
  }
  return {
    revocations: REVOCATIONS,
    revoking_s: round3(revoking_s),
    ...(kill ? { kills } : {}),
    /**
     * First rejection's call start minus the revoke's return, ms: an upper
     * bound, as the worker may not have called at once (a stall, a busy pool).
     */
    delay_ms: figures(delays_from_start),
    /** The same from the first rejection's call end. */
    delay_ms_to_call_end: figures(delays_from_end),
    /** First rejection's call start minus the last success's: the resolution of `delay_ms`. */
    observation_gap_ms: figures(gaps),
    stale_validations: stale,
    stale_validations_beyond_late_ms: stale_late,
    stale_validations_beyond_max_age: stale_beyond_bound,
    /** Pairs whose stale validations filled the worker's record: the count is a lower bound then. */
    stale_saturated,
    /** The latest start, after the revoke's return, of a validation that returned the session. */
    max_stale_ms: round3(max_stale_ms),
    never_rejected,
    false_rejections,
    resurrected: results.reduce((sum, records) => sum + records.resurrected, 0),
    validations_per_s_per_worker: results.map((records) => Math.round(records.validations / records.seconds)),
    /** Each worker's longest stall (no validation ended): a stale success after one is the stall's, not the notification's. */
    max_pause_ms_per_worker: results.map((records) => round3(records.max_pause_ms)),
  }
}

type Run = Awaited<ReturnType<typeof run>>

const line = (name: string, r: Run) =>
  `${name}: delay p50 ${r.delay_ms.p50} / p99 ${r.delay_ms.p99} / max ${r.delay_ms.max} ms ` +
  `(observed every ${r.observation_gap_ms.p50} ms, p50); stale validations ${r.stale_validations} ` +
  `(> ${LATE_MS} ms: ${r.stale_validations_beyond_late_ms}, > max age: ${r.stale_validations_beyond_max_age}; ` +
  `latest ${r.max_stale_ms} ms after); never rejected ${r.never_rejected}; ` +
  `${r.validations_per_s_per_worker.join("/")} validations/s per worker, ` +
  `longest stalls ${r.max_pause_ms_per_worker.map(Math.round).join("/")} ms` +
  ("kills" in r && r.kills !== undefined
    ? `; listeners killed ${r.kills.map((k) => k.killed).join("+")}`
    : "")

const revoker = ManagedRuntime.make(repo_on(layer_postgres({ url: Redacted.make(url), pool_size: 2 })))
const admin = await admin_client(url)
try {
  const { tokens } = await seed_sessions(url, { accounts: 100, sessions: SESSIONS })
  console.log(
    `${SESSIONS} sessions, ${WORKERS} workers × ${CONCURRENCY} validations in flight ` +
      `(${RATE > 0 ? `≤ ${RATE}/s each` : "uncapped"}), ${REVOCATIONS} revokes ` +
      `${INTERVAL_MS} ms apart, cache max age ${MAX_AGE_MS} ms; ${await machine()}`,
  )
  // the revoke path warmed up, so the first measured revokes are not the JIT's: tokens of no session
  for (let i = 0; i < 200; i++)
    await revoker.runPromise(
      Effect.andThen(generate_session_token, (token) => SessionRepo.use((repo) => repo.revoke(token))),
    )
  const steady = await run(tokens, revoker, admin, false)
  console.log(line("steady", steady))
  // the first run's revoked sessions back, for the second run's workers to cache
  const pool = raw_pool(url, 1)
  await restore_seeded_sessions(pool)
  await pool.end()
  const listener_killed = await run(tokens, revoker, admin, true)
  console.log(line("listener killed", listener_killed))

  write_results("revocation.json", {
    machine: await machine(),
    sessions: SESSIONS,
    workers: WORKERS,
    concurrency_per_worker: CONCURRENCY,
    max_validations_per_s_per_worker: RATE,
    revoke_interval_ms: INTERVAL_MS,
    cache_max_age_ms: MAX_AGE_MS,
    late_ms: LATE_MS,
    /** delay: first rejection's call start minus the revoke's return (its commit), per revocation and worker. */
    steady,
    listener_killed,
  })
  // what must hold whatever the machine: a failed run fails the script
  for (const [name, r] of [
    ["steady", steady],
    ["listener killed", listener_killed],
  ] as const) {
    const broken = {
      stale_validations_beyond_max_age: r.stale_validations_beyond_max_age,
      never_rejected: r.never_rejected,
      false_rejections: r.false_rejections,
      resurrected: r.resurrected,
    }
    if (Object.values(broken).some((count) => count > 0)) {
      console.error(`${name}: revocation not honoured:`, broken)
      process.exitCode = 1
    }
  }
} finally {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill()
  await revoker.dispose()
  await admin.end()
  await drop()
  rmSync(temp, { recursive: true, force: true })
}
