// npm run bench: validate throughput and latency against the real PostgreSQL
// server (DATABASE_URL), side by side with baselines run in the same process:
//   (a) SessionRepo.validate (hash + get-valid + touch decision)
//   (b) the same SQL hand-written on raw postgres.js (prepared, same pool size)
//   (c) the origin module's approach: select, then an unconditional touch update
// Seeds 100,000 sessions over 10,000 accounts in a database of its own.
import { writeFileSync } from "node:fs"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import postgres from "postgres"
import {
  generate_session_token,
  hash_session_token,
  layer_postgres,
  migrate,
  SessionRepo,
} from "../src/index.ts"

const SERVER = process.env.DATABASE_URL
if (SERVER === undefined) throw new Error("npm run bench needs DATABASE_URL (a PostgreSQL server)")
const POOL = 10
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const ACCOUNTS = 10_000
const SESSIONS = 100_000

const name = `esr_bench_${process.pid}`
const admin = postgres(SERVER, { max: 1, onnotice: () => {} })
await admin.unsafe(`CREATE DATABASE ${name}`)
const url = new URL(SERVER)
url.pathname = `/${name}`

const runtime = ManagedRuntime.make(
  SessionRepo.layer.pipe(
    Layer.provideMerge(layer_postgres({ url: Redacted.make(url.toString()), pool_size: POOL })),
  ),
)
const raw = postgres(url.toString(), { max: POOL, onnotice: () => {} })

try {
  await runtime.runPromise(migrate)
  // seed: accounts, then sessions whose tokens we keep
  await raw`INSERT INTO account (username) SELECT 'user' || i FROM generate_series(1, ${ACCOUNTS}) i`
  const accounts = (await raw`SELECT id FROM account`).map((row) => row.id as string)
  const tokens: Array<string> = []
  for (let start = 0; start < SESSIONS; start += 5000) {
    const rows = []
    for (let i = start; i < start + 5000; i++) {
      const token = Effect.runSync(generate_session_token)
      tokens.push(token)
      rows.push({
        id: hash_session_token(token),
        account_id: accounts[i % accounts.length] as string,
        expires_at: new Date(Date.now() + 30 * 86_400_000),
        // recently seen: steady state, no touch due
        last_seen_at: new Date(),
      })
    }
    await raw`INSERT INTO auth_session ${raw(rows)}`
  }
  await raw`ANALYZE`
  const pick = () => tokens[Math.floor(Math.random() * tokens.length)] as string

  const variants: Record<string, () => Promise<unknown>> = {
    "a: SessionRepo.validate": () => runtime.runPromise(SessionRepo.use((repo) => repo.validate(pick()))),
    "b: raw postgres.js": () => {
      const hash = hash_session_token(pick())
      return raw`SELECT id, account_id, created_at, expires_at, last_seen_at FROM auth_session
                 WHERE id = ${hash} AND expires_at > ${new Date()}`
    },
    "c: origin (select + update)": async () => {
      const hash = hash_session_token(pick())
      const now = new Date()
      await raw`SELECT id, account_id, created_at, expires_at, last_seen_at FROM auth_session
                WHERE id = ${hash} AND expires_at > ${now}`
      await raw`UPDATE auth_session SET last_seen_at = ${now} WHERE id = ${hash}`
    },
  }

  const measure = async (run: () => Promise<unknown>, concurrency: number) => {
    const latencies: Array<number> = []
    const deadline = performance.now() + SECONDS * 1000
    const worker = async () => {
      while (performance.now() < deadline) {
        const start = performance.now()
        await run()
        latencies.push(performance.now() - start)
      }
    }
    const started = performance.now()
    await Promise.all(Array.from({ length: concurrency }, worker))
    const elapsed = (performance.now() - started) / 1000
    latencies.sort((x, y) => x - y)
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
    return { ops_per_s: Math.round(latencies.length / elapsed), p50_ms: at(0.5), p99_ms: at(0.99) }
  }

  const results: Record<string, Record<number, Awaited<ReturnType<typeof measure>>>> = {}
  for (const concurrency of [1, 32]) {
    for (const [variant, run] of Object.entries(variants)) {
      for (let i = 0; i < 200; i++) await run() // warm up: prepare statements, JIT
      results[variant] = { ...results[variant], [concurrency]: await measure(run, concurrency) }
    }
  }

  const rows = []
  for (const concurrency of [1, 32]) {
    const a = results["a: SessionRepo.validate"]?.[concurrency]
    const b = results["b: raw postgres.js"]?.[concurrency]
    const c = results["c: origin (select + update)"]?.[concurrency]
    for (const [variant, figures] of Object.entries(results)) {
      const r = figures[concurrency]
      if (r === undefined) continue
      rows.push({ concurrency, variant, ...r })
    }
    if (a && b && c) {
      console.log(
        `concurrency ${concurrency}: a/b = ${(a.ops_per_s / b.ops_per_s).toFixed(2)}, a/c = ${(a.ops_per_s / c.ops_per_s).toFixed(2)}`,
      )
    }
  }
  console.table(rows.map((r) => ({ ...r, p50_ms: r.p50_ms.toFixed(3), p99_ms: r.p99_ms.toFixed(3) })))
  writeFileSync(
    new URL("./results.json", import.meta.url),
    `${JSON.stringify({ machine: `${process.platform} ${process.arch}, node ${process.version}`, seconds: SECONDS, pool: POOL, sessions: SESSIONS, results: rows }, null, 2)}\n`,
  )
} finally {
  await raw.end()
  await runtime.dispose()
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await admin.end()
}
