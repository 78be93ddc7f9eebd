// npm run bench:scale: validation latency as auth_session grows from 1,000 to
// 1,000,000 rows, then a cleanup of 500,000 expired rows in batches while
// validations keep running (PostgreSQL at DATABASE_URL). Writes bench/scale.json.
import { writeFileSync } from "node:fs"
import { Effect, Fiber, Layer, ManagedRuntime, Redacted } from "effect"
import postgres from "postgres"
import {
  generate_session_token,
  hash_session_token,
  layer_postgres,
  migrate,
  SessionRepo,
} from "../src/index.ts"
import { machine, run_for, summarize } from "./harness.ts"

const SERVER = process.env.DATABASE_URL
if (SERVER === undefined) throw new Error("npm run bench:scale needs DATABASE_URL (a PostgreSQL server)")
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3)
const KNOWN = 1000
const LIVE = 500_000
const EXPIRED = 500_000
const ACCOUNTS = 10_000

const admin = postgres(SERVER, { max: 1, onnotice: () => {} })
const database = `esr_scale_${process.pid}`
const url = new URL(SERVER)
url.pathname = `/${database}`
await admin.unsafe(`CREATE DATABASE ${database}`)
const runtime = ManagedRuntime.make(
  SessionRepo.layer.pipe(
    Layer.provideMerge(layer_postgres({ url: Redacted.make(url.toString()), pool_size: 10 })),
  ),
)
const sql = postgres(url.toString(), { max: 1, onnotice: () => {} })
try {
  await runtime.runPromise(migrate)
  await sql`INSERT INTO account (username) SELECT 'user' || i FROM generate_series(1, ${ACCOUNTS}) i`
  const accounts = (await sql`SELECT id FROM account`).map((row) => String(row.id))
  const tokens = Array.from({ length: KNOWN }, () => Effect.runSync(generate_session_token))
  await sql`INSERT INTO auth_session ${sql(
    tokens.map((token, i) => ({
      id: hash_session_token(token),
      account_id: accounts[i % ACCOUNTS] as string,
      expires_at: new Date(Date.now() + 30 * 86_400_000),
      last_seen_at: new Date(),
    })),
  )}`
  await sql`VACUUM ANALYZE auth_session`
  let next = 0
  const validate = () =>
    runtime.runPromise(SessionRepo.use((repo) => repo.validate(tokens[next++ % KNOWN] as string)))
  const latency = async (concurrency: number) => {
    for (let i = 0; i < 200; i++) await validate()
    return summarize([await run_for(validate, concurrency, SECONDS)])
  }

  const at_1k = await latency(1)
  console.log(`validate at ${KNOWN} rows, concurrency 1:`, at_1k)

  // grow to 1,000,000: half live, half expired a day ago
  const started = performance.now()
  await sql`
    WITH numbered AS (SELECT id, row_number() OVER () - 1 AS n FROM account)
    INSERT INTO auth_session (id, account_id, created_at, expires_at, last_seen_at)
    SELECT encode(sha256(convert_to('scale' || i, 'UTF8')), 'hex'), numbered.id, now() - interval '40 days',
           CASE WHEN i <= ${EXPIRED} THEN now() - interval '1 day' ELSE now() + interval '20 days' END,
           now() - interval '1 hour'
    FROM generate_series(1, ${LIVE + EXPIRED - KNOWN}) i JOIN numbered ON numbered.n = i % ${ACCOUNTS}`
  await sql`VACUUM ANALYZE auth_session`
  const rows = Number((await sql`SELECT count(*) AS n FROM auth_session`)[0]?.n)
  console.log(`grew to ${rows} rows in ${Math.round((performance.now() - started) / 1000)} s`)

  const at_1m = await latency(1)
  console.log(`validate at ${rows} rows, concurrency 1:`, at_1m)
  const idle = await latency(8)
  console.log("validate at concurrency 8, idle:", idle)

  // cleanup in batches while 8 workers validate
  let deleted = 0
  const cleanup_started = performance.now()
  const cleaner = runtime.runFork(
    SessionRepo.use((repo) =>
      Effect.gen(function* () {
        while (true) {
          const batch = yield* repo.cleanup_expired()
          deleted += batch
          if (batch === 0) return
        }
      }),
    ),
  )
  const during: Array<Awaited<ReturnType<typeof run_for>>> = []
  while (cleaner.pollUnsafe() === undefined) during.push(await run_for(validate, 8, 1))
  await runtime.runPromise(Fiber.join(cleaner))
  const cleanup_seconds = (performance.now() - cleanup_started) / 1000
  const under_cleanup = summarize(during)
  console.log(
    `cleanup deleted ${deleted} rows in ${cleanup_seconds.toFixed(1)} s; validate meanwhile:`,
    under_cleanup,
  )
  const results = {
    machine: await machine(),
    validate_p50_ms: { rows_1k: at_1k.p50_ms, rows_1m: at_1m.p50_ms, ratio: at_1m.p50_ms / at_1k.p50_ms },
    cleanup: {
      deleted,
      seconds: cleanup_seconds,
      idle_p99_ms: idle.p99_ms,
      during_p99_ms: under_cleanup.p99_ms,
      ratio: under_cleanup.p99_ms / idle.p99_ms,
    },
    figures: { at_1k, at_1m, idle, under_cleanup },
  }
  console.log(
    `p50 at 1M / at 1k: ${results.validate_p50_ms.ratio.toFixed(2)} (target ≤ 1.2); ` +
      `p99 during cleanup / idle: ${results.cleanup.ratio.toFixed(2)} (target ≤ 3)`,
  )
  writeFileSync(new URL("./scale.json", import.meta.url), `${JSON.stringify(results, null, 2)}\n`)
} finally {
  await sql.end()
  await runtime.dispose()
  await admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
  await admin.end()
}
