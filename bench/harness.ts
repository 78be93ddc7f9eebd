// Helpers for the benchmarks: throughput, latency and CPU of one operation run
// by N concurrent workers for a fixed time; a database of the run's own; results.
import { mkdirSync, writeFileSync } from "node:fs"
import { pathToFileURL } from "node:url"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import pg from "pg"
import {
  AUTH_SESSION_LIFETIME_MS,
  auth_session,
  type Database,
  type Db,
  generate_session_token,
  hash_session_token,
  layer_postgres,
  layer_session_policy,
  migrate,
  type Notifications,
  type SessionCacheOptions,
  SessionRepo,
} from "./package.ts"

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

/** A connected client for the benchmarks' own setup statements (never one under test). */
export const admin_client = async (url: string): Promise<pg.Client> => {
  const client = new pg.Client({ connectionString: url })
  // a connection lost while idle would otherwise be an uncaught 'error'
  client.on("error", () => {})
  await client.connect()
  return client
}

/** A database of the benchmark's own on `server`; `drop` removes it. */
export const create_database = async (server: string, label: string) => {
  const admin = await admin_client(server)
  const name = `esr_${label}_${process.pid}`
  await admin.query(`CREATE DATABASE ${name}`)
  const url = new URL(server)
  url.pathname = `/${name}`
  const drop = async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  }
  return { url: url.toString(), drop }
}

/** A raw pg pool of `max` connections, as the baselines use. */
export const raw_pool = (url: string, max: number): pg.Pool => {
  const pool = new pg.Pool({ connectionString: url, max })
  // an idle connection that dies would otherwise be an uncaught 'error'
  pool.on("error", () => {})
  return pool
}

/**
 * `body` in a transaction on one pooled connection, without Effect, as
 * src/db/pool-transaction.ts runs one: BEGIN, `body`, COMMIT, or ROLLBACK
 * when `body` fails. The connection goes back to the pool, or is closed when
 * a control statement failed and its state is in doubt.
 */
export const pooled_transaction = async <A>(
  pool: pg.Pool,
  body: (client: pg.PoolClient) => Promise<A>,
): Promise<A> => {
  const client = await pool.connect()
  let broken: Error | undefined
  const control = (statement: "BEGIN" | "COMMIT" | "ROLLBACK") =>
    client.query(statement).catch((error: Error) => {
      broken = error
      throw error
    })
  try {
    await control("BEGIN")
    let value: A
    try {
      value = await body(client)
    } catch (error) {
      await control("ROLLBACK").catch(() => {})
      throw error
    }
    await control("COMMIT")
    return value
  } finally {
    client.release(broken)
  }
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

const HOUR_MS = 3_600_000

/**
 * Migrates the database at `url` and fills it with `sessions` live sessions
 * spread over `accounts` accounts. Their last use is spread over 30 days as
 * a running service's are (the admin list reads the newest hour's), dated
 * from `seen_ahead` on, so no touch falls due during a run. Returns the
 * account ids and the raw tokens.
 */
export const seed_sessions = async (url: string, counts: { accounts: number; sessions: number }) => {
  const setup = ManagedRuntime.make(layer_postgres({ url: Redacted.make(url), pool_size: 2 }))
  await setup.runPromise(migrate)
  await setup.dispose()
  const client = await admin_client(url)
  await client.query("INSERT INTO account (username) SELECT 'user' || i FROM generate_series(1, $1) i", [
    counts.accounts,
  ])
  const accounts = (await client.query("SELECT id FROM account")).rows.map((row) => String(row.id))
  const tokens: Array<string> = []
  const ahead = seen_ahead().getTime()
  for (let start = 0; start < counts.sessions; start += 5000) {
    const columns: [Array<string>, Array<string>, Array<Date>, Array<Date>, Array<Date>] = [
      [],
      [],
      [],
      [],
      [],
    ]
    const [ids, account_ids, expires_ats, last_seen_ats, last_seen_hours] = columns
    for (let i = start; i < Math.min(start + 5000, counts.sessions); i++) {
      const token = Effect.runSync(generate_session_token)
      tokens.push(token)
      ids.push(hash_session_token(token))
      account_ids.push(accounts[i % accounts.length] as string)
      expires_ats.push(new Date(Date.now() + AUTH_SESSION_LIFETIME_MS))
      const seen = ahead + Math.floor(Math.random() * 30 * 24 * HOUR_MS)
      last_seen_ats.push(new Date(seen))
      last_seen_hours.push(new Date(seen - (seen % HOUR_MS)))
    }
    // one statement per batch: a column of values per array parameter
    await client.query(
      `INSERT INTO auth_session (id, account_id, expires_at, last_seen_at, last_seen_hour)
       SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[])`,
      columns,
    )
  }
  // what restore_seeded_sessions puts back
  await client.query("CREATE TABLE bench_seeded_session AS TABLE auth_session")
  await client.query("VACUUM ANALYZE")
  await client.end()
  return { accounts, tokens }
}

/**
 * Puts back every seeded session that is gone (revoked, or evicted by a
 * create), so that each revoke deletes a session: revoke is the deletion of a
 * row, and the seeded tokens last a few seconds of it.
 */
export const restore_seeded_sessions = async (pool: pg.Pool) => {
  await pool.query("INSERT INTO auth_session SELECT * FROM bench_seeded_session ON CONFLICT (id) DO NOTHING")
}

/** SessionRepo with its validation cache (`cache`: its options) on the standalone table under the default policy, with `database`. */
export const cached_repo_on = <E>(
  database: Layer.Layer<Database | Db | Notifications, E>,
  cache: SessionCacheOptions = {},
) =>
  SessionRepo.layer_cached(auth_session, { cache }).pipe(
    Layer.provide(layer_session_policy()),
    Layer.provideMerge(database),
  )

/** SessionRepo on the standalone table (or `table`, another definition of it) under the default policy, with `database`. */
export const repo_on = <E>(
  database: Layer.Layer<Database | Db, E>,
  table: typeof auth_session = auth_session,
) => SessionRepo.layer(table).pipe(Layer.provide(layer_session_policy()), Layer.provideMerge(database))
