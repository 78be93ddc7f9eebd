// npm run bench [-- part ...]: the session operations against the real
// PostgreSQL server (DATABASE_URL), side by side with baselines run in the
// same process on the same data (bench/variants.ts): (a) this project's
// SessionRepo; (b) raw pg sending the repo's own statements, their SQL and
// values taken from the statements; (c) for validate, the same on raw
// postgres.js. Also what a touch costs the server (bench/touches.ts), the
// server's own ceiling (pgbench -S) and validate on PGlite (bench/pglite.ts).
// Parts: "touches", "operations", "pgbench", "pglite", "revocation" and "http"
// (the default), "sustained". The last two run bench/revocation.ts and
// bench/http.ts, which start processes of their own: how long a revocation
// takes to reach 4 processes validating through the cache, and a session's
// cost on an HTTP request. Writes bench/results.json (with their figures). Each variant keeps its pools for all its
// slices (the "sustained" part shows one pool over a longer time).
// Twenty short rounds in alternating order (BENCH_ROUNDS, BENCH_SECONDS per
// slice), and each ratio is the median of the rounds' own, with their middle
// half beside it: with two long rounds and pooled counts, drift of the shared
// machine moved create's a/b by 0.2; with ten, a run's ratios still moved by 0.1.
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import {
  admin_client,
  create_database,
  type Figures,
  machine,
  median,
  results_dir,
  run_for,
  seed_sessions,
  server_url,
  summarize,
  write_results,
} from "./harness.ts"
import { pglite_figures } from "./pglite.ts"
import { touch_figures } from "./touches.ts"
import { bench_operations, is_operation, OPERATIONS, POOL, SEED, type Variant } from "./variants.ts"

const SERVER = server_url("bench")
const SLICE_SECONDS = Number(process.env.BENCH_SECONDS ?? 0.6)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20)
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 4)
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 4)
const CONCURRENCIES = [1, 32]
const parts =
  process.argv.slice(2).length > 0
    ? process.argv.slice(2)
    : ["touches", "operations", "pgbench", "pglite", "revocation", "http"]

/** Runs a benchmark script in a process of its own (it starts processes itself); its figures. */
const run_script = (script: string, file: string): unknown => {
  execFileSync(process.execPath, ["--import", "tsx", script], { stdio: "inherit", env: process.env })
  return JSON.parse(readFileSync(new URL(file, results_dir()), "utf8"))
}
const only = process.env.BENCH_ONLY // e.g. "validate"
if (only !== undefined && !is_operation(only)) throw new Error(`BENCH_ONLY: one of ${OPERATIONS.join(", ")}`)

const { url, drop } = await create_database(SERVER, "bench")

let statements = 0

/**
 * Runs every variant of one operation in alternating order; returns each
 * variant's figures and its throughput in each round. Each variant keeps its
 * pools open from its warm-up to the last round, as a running server does.
 * Neighbouring slices of one round share the machine's state, so a/b is the
 * median of the rounds' own ratios: one slice hit by a neighbour's burst does
 * not move it.
 */
const compare = async (variants: ReadonlyArray<Variant>, concurrency: number) => {
  const slices = new Map<string, Array<Awaited<ReturnType<typeof run_for>>>>()
  // every call each variant made, warm-up included
  const calls = new Map<string, number>()
  const opened = variants.map(([name, open]) => [name, open()] as const)
  try {
    // Warm the JIT first, as a running server is: the repo's longer call path
    // needs seconds of calls to reach its steady speed, the driver's far less.
    for (const [name, { op, restore }] of opened) {
      await restore?.()
      const warm_up = await run_for(op, concurrency, WARMUP_SECONDS)
      calls.set(name, warm_up.latencies.length)
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, { op, restore }] of round % 2 === 0 ? opened : [...opened].reverse()) {
        await restore?.()
        const slice = await run_for(op, concurrency, SLICE_SECONDS)
        slices.set(name, [...(slices.get(name) ?? []), slice])
        calls.set(name, (calls.get(name) ?? 0) + slice.latencies.length)
      }
    }
  } finally {
    for (const [, { close }] of opened) await close()
  }
  const per_round = (name: string | undefined) =>
    (slices.get(name ?? "") ?? []).map((slice) => slice.latencies.length / slice.seconds)
  /** The median of the rounds' own ratios, and their middle half (first and third quartile). */
  const paired_ratio = (x: string | undefined, y: string | undefined) => {
    const [xs, ys] = [per_round(x), per_round(y)]
    if (xs.length === 0 || xs.length !== ys.length) return undefined
    const ratios = xs.map((ops, i) => ops / (ys[i] as number)).sort((p, q) => p - q)
    const at = (q: number) => Math.round(100 * (ratios[Math.floor(q * (ratios.length - 1))] as number)) / 100
    return { median: Math.round(100 * median(ratios)) / 100, quartiles: [at(0.25), at(0.75)] }
  }
  return {
    figures: new Map([...slices].map(([name, measured]) => [name, summarize(measured)])),
    calls,
    paired_ratio,
  }
}

const server_version = async () => {
  const client = await admin_client(SERVER)
  const version = String((await client.query("SHOW server_version")).rows[0]?.server_version)
  await client.end()
  return version
}

try {
  const results: Record<string, unknown> = {
    machine: await machine(),
    postgres: await server_version(),
    pool_size: POOL,
    slice_seconds: SLICE_SECONDS,
    rounds: ROUNDS,
  }
  const { accounts, tokens } = await seed_sessions(url, SEED)
  console.log(`seeded ${SEED.sessions} sessions over ${SEED.accounts} accounts; ${results.machine}`)

  const operations = bench_operations(url, { accounts, tokens }, () => void statements++)

  if (parts.includes("touches")) {
    // before revoke deletes the seeded sessions
    // every tenth session: spread over the table, as a service's active sessions are
    results.touches = await touch_figures(
      url,
      tokens.filter((_, i) => i % 10 === 0),
    )
    console.log("touches:", results.touches)
  }

  if (parts.includes("operations")) {
    const rows: Array<{ operation: string; concurrency: number; variant: string } & Figures> = []
    const ratios: Array<{
      operation: string
      concurrency: number
      a_b: number | undefined
      a_b_quartiles: ReadonlyArray<number> | undefined
      a_c?: number | undefined
    }> = []
    for (const [operation, variants] of Object.entries(operations).filter(
      ([name]) => !only || name === only,
    )) {
      for (const concurrency of CONCURRENCIES) {
        const statements_before = statements
        const { figures, calls, paired_ratio } = await compare(variants, concurrency)
        if (operation === "validate") {
          // statements the repo sent per validation, over every validation it
          // made: a touch it wrote, which the raw baselines would not, counts
          const per_call = (statements - statements_before) / (calls.get(variants[0]?.[0] ?? "") ?? 1)
          results.statements_per_validate = Math.max(Number(results.statements_per_validate ?? 0), per_call)
        }
        for (const [variant, f] of figures) rows.push({ operation, concurrency, variant, ...f })
        const [a, b, c] = variants.map(([name]) => name)
        const a_b = paired_ratio(a, b)
        const a_c = c === undefined ? undefined : paired_ratio(a, c)?.median
        ratios.push({
          operation,
          concurrency,
          a_b: a_b?.median,
          a_b_quartiles: a_b?.quartiles,
          ...(a_c === undefined ? {} : { a_c }),
        })
        console.log(
          `${operation} at concurrency ${concurrency}: a/b ${a_b?.median} (middle half of rounds ${a_b?.quartiles.join("-")})${a_c ? `, a/c ${a_c}` : ""}`,
        )
      }
    }
    console.table(rows)
    console.log(`statements per validate (the repo's): ${results.statements_per_validate}`)
    Object.assign(results, { operations: rows, ratios })
  }

  if (parts.includes("sustained")) {
    // one pool for 6 consecutive slices each: does throughput fall as the pool keeps running?
    const sustained: Record<string, Array<number>> = {}
    for (const [name, open] of (operations.validate ?? []).slice(0, 2)) {
      const { op, close } = open()
      sustained[name] = []
      for (let slice = 0; slice < 6; slice++) {
        sustained[name].push(summarize([await run_for(op, 32, 3)]).ops_per_s)
      }
      await close()
      console.log(
        `sustained validate, concurrency 32, ops/s per 3 s slice, ${name}: ${sustained[name].join(", ")}`,
      )
    }
    results.sustained = sustained
  }

  if (parts.includes("pgbench")) {
    // the server's own ceiling for a point select on this machine
    const { url: target, drop: drop_pgbench } = await create_database(SERVER, "bench_pgbench")
    try {
      execFileSync("pgbench", ["-i", "-q", "-s", "10", target], { stdio: "ignore" })
      const tps: Record<number, number> = {}
      for (const concurrency of CONCURRENCIES) {
        const output = execFileSync(
          "pgbench",
          [
            "-S",
            "-M",
            "prepared",
            "-n",
            "-c",
            String(concurrency),
            "-j",
            String(Math.min(concurrency, 2)),
            "-T",
            String(PGBENCH_SECONDS),
            target,
          ],
          { encoding: "utf8" },
        )
        tps[concurrency] = Math.round(Number(/tps = ([\d.]+)/.exec(output)?.[1]))
        console.log(`pgbench -S -M prepared at concurrency ${concurrency}: ${tps[concurrency]} tps`)
      }
      results.pgbench_select_only_tps = tps
    } finally {
      await drop_pgbench()
    }
  }
  if (parts.includes("pglite")) {
    results.pglite = await pglite_figures(Math.max(SLICE_SECONDS, 0.2) * 3)
    console.log(`PGlite validate, one caller: a/b ${(results.pglite as { a_b: number }).a_b}`)
  }
  if (parts.includes("revocation")) results.revocation = run_script("bench/revocation.ts", "revocation.json")
  if (parts.includes("http")) results.http = run_script("bench/http.ts", "http.json")
  write_results("results.json", results)
} finally {
  await drop()
}
