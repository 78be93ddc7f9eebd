// npm run bench:scale: validation latency on a table of 1,000 sessions and on
// one of 1,000,000 (measured in alternating slices), then a cleanup of the
// 500,000 expired rows of the large table in batches while validations keep
// running (PostgreSQL at DATABASE_URL). Writes bench/scale.json.
import { Effect, Fiber, ManagedRuntime, Redacted } from "effect"
import {
  admin_client,
  create_database,
  machine,
  repo_on,
  run_for,
  seed_sessions,
  server_url,
  summarize,
  write_results,
} from "./harness.ts"
import { layer_postgres, SessionRepo } from "./package.ts"

const SERVER = server_url("bench:scale")
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const KNOWN = 1000
const LARGE = 1_000_000
const EXPIRED = 500_000
const ACCOUNTS = 10_000

/** A database of its own holding KNOWN sessions plus `filler` generated ones (the first EXPIRED of them expired). */
const open_database = async (label: string, filler: number) => {
  const { url, drop } = await create_database(SERVER, `scale_${label}`)
  const { tokens } = await seed_sessions(url, { accounts: ACCOUNTS, sessions: KNOWN })
  const runtime = ManagedRuntime.make(repo_on(layer_postgres({ url: Redacted.make(url), pool_size: 10 })))
  const client = await admin_client(url)
  await client.query(
    `WITH numbered AS (SELECT id, row_number() OVER () - 1 AS n FROM account)
     INSERT INTO auth_session (id, account_id, created_at, expires_at, last_seen_at)
     SELECT encode(sha256(convert_to('scale' || i, 'UTF8')), 'hex'), numbered.id, now() - interval '40 days',
            CASE WHEN i <= $1 THEN now() - interval '1 day' ELSE now() + interval '20 days' END,
            now() - interval '1 hour'
     FROM generate_series(1, $2) i JOIN numbered ON numbered.n = i % $3`,
    [EXPIRED, filler, ACCOUNTS],
  )
  await client.query("VACUUM ANALYZE auth_session")
  const rows = Number((await client.query("SELECT count(*) AS n FROM auth_session")).rows[0]?.n)
  await client.end()
  let next = 0
  const validate = () =>
    runtime.runPromise(SessionRepo.use((repo) => repo.validate(tokens[next++ % KNOWN] as string)))
  for (let i = 0; i < 500; i++) await validate()
  const close = async () => {
    await runtime.dispose()
    await drop()
  }
  return { rows, runtime, validate, close }
}

const small = await open_database("small", 0)
const large = await open_database("large", LARGE - KNOWN)
try {
  console.log(`tables of ${small.rows} and ${large.rows} sessions; ${await machine()}`)
  const slices: Record<"small" | "large", Array<Awaited<ReturnType<typeof run_for>>>> = {
    small: [],
    large: [],
  }
  for (let round = 0; round < 3; round++) {
    slices.small.push(await run_for(small.validate, 1, SECONDS))
    slices.large.push(await run_for(large.validate, 1, SECONDS))
  }
  const at_1k = summarize(slices.small)
  const at_1m = summarize(slices.large)
  console.log(`validate, one caller, ${small.rows} rows:`, at_1k)
  console.log(`validate, one caller, ${large.rows} rows:`, at_1m)

  const idle = summarize([await run_for(large.validate, 8, SECONDS * 2)])
  console.log("validate, 8 callers, idle:", idle)
  let deleted = 0
  const cleanup_started = performance.now()
  const cleaner = large.runtime.runFork(
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
  while (cleaner.pollUnsafe() === undefined) during.push(await run_for(large.validate, 8, 1))
  await large.runtime.runPromise(Fiber.join(cleaner))
  const cleanup_seconds = (performance.now() - cleanup_started) / 1000
  const under_cleanup = summarize(during)
  console.log(
    `cleanup deleted ${deleted} rows in ${cleanup_seconds.toFixed(1)} s; validate meanwhile:`,
    under_cleanup,
  )

  const p50_ratio = at_1m.p50_ms / at_1k.p50_ms
  const p99_ratio = under_cleanup.p99_ms / idle.p99_ms
  console.log(
    `p50 at 1M / at 1k: ${p50_ratio.toFixed(2)} (target ≤ 1.2); p99 during cleanup / idle: ${p99_ratio.toFixed(2)} (target ≤ 3)`,
  )
  write_results("scale.json", {
    machine: await machine(),
    validate_p50: { small_rows: small.rows, large_rows: large.rows, at_1k, at_1m, ratio: p50_ratio },
    cleanup: { deleted, seconds: cleanup_seconds, idle, under_cleanup, p99_ratio },
  })
} finally {
  await small.close()
  await large.close()
}
