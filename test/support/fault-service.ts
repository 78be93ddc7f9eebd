import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import type pg from "pg"
import { assert } from "vitest"
import { admin_client } from "./admin.ts"

// The parent side of test/fault/service.ts: a database of its own, the child
// process, the faults injected while its load runs, and what it reports.

/** The limit the service's creates pass: no account may end above it. */
export const FAULT_MAX_SESSIONS = 3

/** The last line test/fault/service.ts prints. */
export interface FaultReport {
  readonly scenario: string
  readonly handlers_at_start: { readonly uncaught_exception: number; readonly unhandled_rejection: number }
  readonly calls: number
  readonly ok: number
  readonly retryable: number
  readonly commit_unknown: number
  readonly unexpected: ReadonlyArray<string>
  readonly failures: Readonly<Record<string, number>>
  readonly slowest_ms: number
  readonly fastest_failure_ms: number | null
  readonly longest_gap_ms: number
  readonly read_after_ms: number
  readonly read_after_ok: boolean
  readonly close_ms: number
}

export interface FaultRun<Injected> {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderr: string
  readonly report: FaultReport | undefined
  /** What the fault injector returned. */
  readonly injected: Injected
  /** The most live sessions any account held at the end. */
  readonly most_sessions: number
}

export type Scenario = "create" | "validate"
export type Transport = "tcp" | "tls"
/** Whose pool the service runs on: the layer's own, or the app's handed to `layer_postgres_pool`. */
export type Pool = "layer" | "app"

const SERVICE = fileURLToPath(new URL("../fault/service.ts", import.meta.url))

const url_of = (server_url: string, database: string, transport: Transport): string => {
  const url = new URL(server_url)
  url.pathname = `/${database}`
  url.searchParams.set("sslmode", transport === "tls" ? "require" : "disable")
  return url.toString()
}

/** One JSON line a service process printed (`ready`, `load_done`, `report`, or its own). */
export interface ServiceEvent {
  readonly event: string
  readonly [field: string]: unknown
}

/**
 * Runs `script` (a service like test/fault/service.ts) in a child Node process
 * (tsx as its loader, nothing else) with `env` added to this one's, and calls
 * `inject` once it prints `ready`; `load_done` resolves when it prints
 * `load_done` (or exits). Its `report` line is the report; every JSON line is
 * also given to `on_event`. Resolves when the child has exited by itself and
 * `inject` has settled.
 */
export const run_service_process = <Injected>(options: {
  readonly script: string
  readonly env: Readonly<Record<string, string>>
  readonly inject: (load_done: Promise<void>) => Promise<Injected>
  readonly on_event?: (event: ServiceEvent) => void
}) =>
  new Promise<Omit<FaultRun<Injected>, "most_sessions">>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", options.script], {
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    })
    let stdout = ""
    let stderr = ""
    let report: FaultReport | undefined
    let injected: Promise<Injected> | undefined
    let end_load: () => void = () => {}
    const load_done = new Promise<void>((r) => {
      end_load = r
    })
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      const lines = stdout.split("\n")
      stdout = lines.pop() ?? ""
      for (const line of lines) {
        if (!line.startsWith("{")) continue
        const event = JSON.parse(line) as ServiceEvent
        if (event.event === "ready") injected = options.inject(load_done)
        if (event.event === "load_done") end_load()
        if (event.event === "report") report = event as unknown as FaultReport
        options.on_event?.(event)
      }
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("error", reject)
    child.on("exit", (code, signal) => {
      end_load()
      if (injected === undefined)
        return resolve({ code, signal, stderr, report, injected: undefined as Injected })
      injected.then((value) => resolve({ code, signal, stderr, report, injected: value }), reject)
    })
  })

/** test/fault/service.ts's `scenario` on `url` for `seconds`, on `pool`'s pool. */
const run_child = <Injected>(
  url: string,
  scenario: Scenario,
  seconds: number,
  pool: Pool,
  inject: (load_done: Promise<void>) => Promise<Injected>,
) =>
  run_service_process({
    script: SERVICE,
    env: {
      FAULT_DATABASE_URL: url,
      FAULT_SCENARIO: scenario,
      FAULT_SECONDS: String(seconds),
      FAULT_POOL: pool,
    },
    inject,
  })

/**
 * The service's `scenario` for `seconds` on a database of its own over
 * `transport`, with `inject` running the faults; the database is dropped after.
 */
export const run_fault_service = async <Injected>(options: {
  readonly server_url: string
  readonly scenario: Scenario
  readonly transport: Transport
  readonly seconds: number
  readonly pool?: Pool
  readonly inject: (database: string, load_done: Promise<void>) => Promise<Injected>
}): Promise<FaultRun<Injected>> => {
  const database = `esr_fault_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
  // admin connections of their own: a restart during the run ends any older one
  const creator = await admin_client(options.server_url)
  await creator.query(`CREATE DATABASE ${database}`).finally(() => creator.end())
  try {
    const run = await run_child(
      url_of(options.server_url, database, options.transport),
      options.scenario,
      options.seconds,
      options.pool ?? "layer",
      (load_done) => options.inject(database, load_done),
    )
    const check = await admin_client(url_of(options.server_url, database, "tcp"))
    try {
      const { rows } = await check.query<{ most: number | null }>(
        `SELECT max(n)::int AS most FROM (
           SELECT count(*) AS n FROM auth_session WHERE expires_at > now() GROUP BY account_id) per_account`,
      )
      return { ...run, most_sessions: rows[0]?.most ?? 0 }
    } finally {
      await check.end()
    }
  } finally {
    const dropper = await admin_client(options.server_url)
    await dropper.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).finally(() => dropper.end())
  }
}

/** The child's exit and the head of its stderr, for assertion messages. */
export const failure_text = (run: FaultRun<unknown>): string =>
  run.code === 0 && run.report === undefined
    ? // nothing was left to run, yet the program never finished: a promise that never settles
      "exit 0 without a report: a call or the layer's close never settled"
    : `exit ${run.code} ${run.signal ?? ""}\n${run.stderr.split("\n").slice(0, 20).join("\n")}`

/** Closing the service's layer after the faults must take less than this. */
export const CLOSE_BOUND_MS = 1000

/**
 * What every run must show, whatever the faults: the process lived, had no
 * handlers installed, exited by itself after reporting; no failure was anything
 * but a retryable DbError; a read afterwards was served; the pool closed fast.
 */
export const assert_service_lived = (run: FaultRun<unknown>, label: string): FaultReport => {
  const { report } = run
  assert.isDefined(report, `no report: ${failure_text(run)}`)
  console.log(`${label}: ${JSON.stringify({ injected: run.injected, ...report })}`)
  assert.strictEqual(run.code, 0, failure_text(run))
  assert.deepStrictEqual(report?.handlers_at_start, { uncaught_exception: 0, unhandled_rejection: 0 })
  assert.deepStrictEqual(report?.unexpected, [])
  assert.isAbove(report?.ok ?? 0, 0)
  assert.isTrue(report?.read_after_ok)
  assert.isBelow(report?.close_ms ?? Number.POSITIVE_INFINITY, CLOSE_BOUND_MS)
  return report as FaultReport
}

/** Whether the server accepts TLS; fails under REQUIRE_TLS=1 when it does not. */
export const server_has_tls = async (admin: pg.Client, suite: string): Promise<boolean> => {
  const { rows } = await admin.query<{ ssl: string }>("SHOW ssl")
  if (rows[0]?.ssl === "on") return true
  if (process.env.REQUIRE_TLS === "1") throw new Error("REQUIRE_TLS=1 but the server has ssl off")
  console.warn(`[${suite}] TLS cases SKIPPED: the server has ssl off (.ci/postgres-tls.sh turns it on)`)
  return false
}

export interface Kills {
  /** Backends terminated, over all rounds. */
  readonly terminated: number
  /** Of those, the ones on a TLS connection. */
  readonly over_tls: number
  readonly rounds: number
}

/** Terminates every backend the service holds on `database`, once a second until the load ends. */
export const kill_every_second = async (
  admin: pg.Client,
  database: string,
  load_done: Promise<void>,
): Promise<Kills> => {
  let running = true
  void load_done.then(() => {
    running = false
  })
  let terminated = 0
  let over_tls = 0
  let rounds = 0
  while (running) {
    await new Promise((r) => setTimeout(r, 1000))
    if (!running) break
    const { rows } = await admin.query<{ terminated: number; over_tls: number }>(
      // the targets first (MATERIALIZED), so no other backend is ever passed to pg_terminate_backend
      `WITH targets AS MATERIALIZED (
         SELECT a.pid, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.datname = $1 AND a.application_name = 'effect-session-repo')
       SELECT count(*)::int AS terminated, count(*) FILTER (WHERE ssl)::int AS over_tls
       FROM targets WHERE pg_terminate_backend(pid)`,
      [database],
    )
    terminated += rows[0]?.terminated ?? 0
    over_tls += rows[0]?.over_tls ?? 0
    rounds++
  }
  return { terminated, over_tls, rounds }
}
