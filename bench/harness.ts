// Helpers for the benchmarks: throughput, latency and CPU of one operation run
// by N concurrent workers for a fixed time; a database of the run's own; results.
import { mkdirSync, writeFileSync } from "node:fs"
import { pathToFileURL } from "node:url"
import { Effect, ManagedRuntime, Redacted } from "effect"
import postgres from "postgres"
import {
  AUTH_SESSION_LIFETIME_MS,
  generate_session_token,
  hash_session_token,
  layer_postgres,
  migrate,
} from "../src/index.ts"

export interface Figures {
  readonly ops_per_s: number
  readonly p50_ms: number
  readonly p99_ms: number
  /** CPU time of this process per operation: steadier than throughput on a shared machine. */
  readonly cpu_us_per_op: number
}

/** Runs `op` from `concurrency` workers for `seconds`; returns its latencies (ms) and the elapsed time. */
export const run_for = async (op: () => Promise<unknown>, concurrency: number, seconds: number) => {
  const latencies: Array<number> = []
  const deadline = performance.now() + seconds * 1000
  const worker = async () => {
    while (performance.now() < deadline) {
      const start = performance.now()
      await op()
      latencies.push(performance.now() - start)
    }
  }
  const started = performance.now()
  const cpu_before = process.cpuUsage()
  await Promise.all(Array.from({ length: concurrency }, worker))
  const cpu = process.cpuUsage(cpu_before)
  return { latencies, seconds: (performance.now() - started) / 1000, cpu_us: cpu.user + cpu.system }
}

/** Throughput, p50/p99 latency and CPU per operation over several measured slices of one operation. */
export const summarize = (
  slices: ReadonlyArray<{ latencies: Array<number>; seconds: number; cpu_us: number }>,
): Figures => {
  const latencies = slices.flatMap((slice) => slice.latencies).sort((x, y) => x - y)
  const seconds = slices.reduce((sum, slice) => sum + slice.seconds, 0)
  const cpu_us = slices.reduce((sum, slice) => sum + slice.cpu_us, 0)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  return {
    ops_per_s: Math.round(latencies.length / seconds),
    p50_ms: round3(at(0.5)),
    p99_ms: round3(at(0.99)),
    cpu_us_per_op: Math.round((10 * cpu_us) / latencies.length) / 10,
  }
}

export const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((x, y) => x - y)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

export const round3 = (x: number): number => Math.round(x * 1000) / 1000

export const ratio = (x: Figures | undefined, y: Figures | undefined): number | undefined =>
  x === undefined || y === undefined ? undefined : Math.round((100 * x.ops_per_s) / y.ops_per_s) / 100

export const machine = async (): Promise<string> => {
  const os = await import("node:os")
  const cpu = os.cpus()[0]?.model ?? "unknown cpu"
  return `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${process.platform} ${process.arch}, Node ${process.version}`
}

/** DATABASE_URL: the PostgreSQL benchmarks need a server. */
export const server_url = (script: string): string => {
  const url = process.env.DATABASE_URL
  if (url === undefined) throw new Error(`npm run ${script} needs DATABASE_URL (a PostgreSQL server)`)
  return url
}

/** A database of the benchmark's own on `server`; `drop` removes it. */
export const create_database = async (server: string, label: string) => {
  const admin = postgres(server, { max: 1, onnotice: () => {} })
  const name = `esr_${label}_${process.pid}`
  await admin.unsafe(`CREATE DATABASE ${name}`)
  const url = new URL(server)
  url.pathname = `/${name}`
  const drop = async () => {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  }
  return { url: url.toString(), drop }
}

/**
 * Where the benchmarks write their figures: bench/ (bench/*.json and
 * bench/profiles/ are not committed), or BENCH_RESULTS_DIR, as CI sets so its
 * short runs do not replace figures of full runs.
 */
export const results_dir = (): URL =>
  process.env.BENCH_RESULTS_DIR === undefined
    ? new URL("./", import.meta.url)
    : pathToFileURL(process.env.BENCH_RESULTS_DIR.replace(/\/?$/, "/"))

/** Writes a benchmark's figures to results_dir(), creating it if needed. */
export const write_results = (file: string, results: unknown): void => {
  mkdirSync(results_dir(), { recursive: true })
  writeFileSync(new URL(file, results_dir()), `${JSON.stringify(results, null, 2)}\n`)
}

/**
 * A `last_seen_at` that keeps validations in the steady state (no touch due)
 * for a whole benchmark: 10 minutes from now, as the touch interval (60 s) is
 * shorter than most runs.
 */
export const seen_ahead = (): Date => new Date(Date.now() + 10 * 60_000)

/**
 * Migrates the database at `url` and fills it with `sessions` live sessions
 * spread over `accounts` accounts, seen ahead (`seen_ahead`). Returns the
 * account ids and the raw tokens.
 */
export const seed_sessions = async (url: string, counts: { accounts: number; sessions: number }) => {
  const setup = ManagedRuntime.make(layer_postgres({ url: Redacted.make(url), pool_size: 2 }))
  await setup.runPromise(migrate)
  await setup.dispose()
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  await sql`INSERT INTO account (username) SELECT 'user' || i FROM generate_series(1, ${counts.accounts}) i`
  const accounts = (await sql`SELECT id FROM account`).map((row) => String(row.id))
  const tokens: Array<string> = []
  for (let start = 0; start < counts.sessions; start += 5000) {
    const rows = []
    for (let i = start; i < Math.min(start + 5000, counts.sessions); i++) {
      const token = Effect.runSync(generate_session_token)
      tokens.push(token)
      rows.push({
        id: hash_session_token(token),
        account_id: accounts[i % accounts.length] as string,
        expires_at: new Date(Date.now() + AUTH_SESSION_LIFETIME_MS),
        last_seen_at: seen_ahead(),
      })
    }
    await sql`INSERT INTO auth_session ${sql(rows)}`
  }
  await sql`VACUUM ANALYZE`
  await sql.end()
  return { accounts, tokens }
}
