// npm run bench [-- part ...]: the session operations against the real
// PostgreSQL server (DATABASE_URL), side by side with baselines run in the
// same process on the same data:
//   (a) this project's SessionRepo
//   (b) the same SQL hand-written on raw postgres.js (prepared, same pool size)
//   (c) for validate, the origin module's approach: select, then an
//       unconditional touch update on every request
// Parts: "operations" and "pgbench" (the default), "sustained".
// Writes bench/results.json. Every slice gets fresh pools: postgres.js slows
// down the longer one pool runs pipelined (see the "sustained" part). Six
// short rounds in alternating order (BENCH_ROUNDS, BENCH_SECONDS per slice):
// with two long ones, drift of the shared machine moved create's a/b by 0.2.
import { execFileSync } from "node:child_process"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import postgres from "postgres"
import {
  AUTH_SESSION_LIFETIME_MS,
  generate_session_token,
  hash_session_token,
  layer_postgres,
  SessionRepo,
} from "../src/index.ts"
import {
  create_database,
  type Figures,
  machine,
  ratio,
  run_for,
  seed_sessions,
  server_url,
  summarize,
  write_results,
} from "./harness.ts"

const SERVER = server_url("bench")
const POOL = 10
const SLICE_SECONDS = Number(process.env.BENCH_SECONDS ?? 1)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6)
const PGBENCH_SECONDS = 4
const WARMUP_SECONDS = 2
const CONCURRENCIES = [1, 32]
const ACCOUNTS = 10_000
const SESSIONS = 100_000
const parts = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["operations", "pgbench"]

const { url, drop } = await create_database(SERVER, "bench")

interface Opened {
  readonly op: () => Promise<unknown>
  readonly close: () => Promise<unknown>
}
type Variant = readonly [name: string, open: () => Opened]

let statements = 0
const with_repo =
  (make_op: (repo: SessionRepo["Service"]) => Effect.Effect<unknown, unknown>): (() => Opened) =>
  () => {
    const runtime = ManagedRuntime.make(
      SessionRepo.layer.pipe(
        Layer.provideMerge(
          layer_postgres({
            url: Redacted.make(url),
            pool_size: POOL,
            on_statement: () => void statements++,
          }),
        ),
      ),
    )
    return { op: () => runtime.runPromise(SessionRepo.use(make_op)), close: () => runtime.dispose() }
  }
const with_raw =
  (make_op: (sql: postgres.Sql) => () => Promise<unknown>): (() => Opened) =>
  () => {
    const sql = postgres(url, { max: POOL, onnotice: () => {} })
    return { op: make_op(sql), close: () => sql.end() }
  }

/** Runs every variant of one operation in alternating order; returns each variant's figures. */
const compare = async (variants: ReadonlyArray<Variant>, concurrency: number) => {
  const slices = new Map<string, Array<Awaited<ReturnType<typeof run_for>>>>()
  // Warm the JIT first, as a running server is: the repo's longer call path
  // needs seconds of calls to reach its steady speed, the driver's far less.
  for (const [, open] of variants) {
    const { op, close } = open()
    await run_for(op, concurrency, WARMUP_SECONDS)
    await close()
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, open] of round % 2 === 0 ? variants : [...variants].reverse()) {
      const { op, close } = open()
      for (let i = 0; i < 100; i++) await op() // prepare the statements, warm the JIT
      slices.set(name, [...(slices.get(name) ?? []), await run_for(op, concurrency, SLICE_SECONDS)])
      await close()
    }
  }
  return new Map([...slices].map(([name, measured]) => [name, summarize(measured)]))
}

const server_version = async () => {
  const sql = postgres(SERVER, { max: 1, onnotice: () => {} })
  const version = String((await sql`SHOW server_version`)[0]?.server_version)
  await sql.end()
  return version
}

const results: Record<string, unknown> = {
  machine: await machine(),
  postgres: await server_version(),
  pool_size: POOL,
  slice_seconds: SLICE_SECONDS,
  rounds: ROUNDS,
}

try {
  const { accounts, tokens } = await seed_sessions(url, { accounts: ACCOUNTS, sessions: SESSIONS })
  console.log(`seeded ${SESSIONS} sessions over ${ACCOUNTS} accounts; ${results.machine}`)

  const random_token = () => tokens[Math.floor(Math.random() * tokens.length)] as string
  const random_account = () => accounts[Math.floor(Math.random() * accounts.length)] as string
  let next_revoke = 0
  const revoke_token = () => tokens[next_revoke++ % tokens.length] as string
  const columns = "id, account_id, created_at, expires_at, last_seen_at"

  const operations: Record<string, ReadonlyArray<Variant>> = {
    validate: [
      ["a: SessionRepo", with_repo((repo) => repo.validate(random_token()))],
      [
        "b: raw postgres.js",
        with_raw(
          (sql) => () =>
            sql`SELECT ${sql.unsafe(columns)} FROM auth_session
                WHERE id = ${hash_session_token(random_token())} AND expires_at > ${new Date()}`,
        ),
      ],
      [
        "c: origin (select + update)",
        with_raw((sql) => async () => {
          const id = hash_session_token(random_token())
          const now = new Date()
          await sql`SELECT ${sql.unsafe(columns)} FROM auth_session WHERE id = ${id} AND expires_at > ${now}`
          await sql`UPDATE auth_session SET last_seen_at = ${now} WHERE id = ${id}`
        }),
      ],
    ],
    "list for account": [
      ["a: SessionRepo", with_repo((repo) => repo.list_for_account(random_account(), { limit: 50 }))],
      [
        "b: raw postgres.js",
        with_raw(
          (sql) => () =>
            sql`SELECT ${sql.unsafe(columns)} FROM auth_session
                WHERE account_id = ${random_account()} AND expires_at > ${new Date()}
                ORDER BY created_at DESC, id DESC LIMIT 50`,
        ),
      ],
    ],
    "list all active": [
      ["a: SessionRepo", with_repo((repo) => repo.list_all_active({ limit: 50 }))],
      [
        "b: raw postgres.js",
        with_raw(
          (sql) => () =>
            sql`SELECT s.id, s.account_id, s.created_at, s.expires_at, s.last_seen_at, a.username
                FROM auth_session s JOIN account a ON a.id = s.account_id
                WHERE s.expires_at > ${new Date()} ORDER BY s.last_seen_at DESC, s.id DESC LIMIT 50`,
        ),
      ],
    ],
    "create with limit": [
      ["a: SessionRepo", with_repo((repo) => repo.create_session(random_account()))],
      [
        "b: raw postgres.js",
        with_raw((sql) => () => {
          const account_id = random_account()
          const id = hash_session_token(Effect.runSync(generate_session_token))
          const now = new Date()
          return sql.begin(async (tx) => {
            await tx`INSERT INTO auth_session (id, account_id, created_at, expires_at, last_seen_at)
                     VALUES (${id}, ${account_id}, ${now}, ${new Date(now.getTime() + AUTH_SESSION_LIFETIME_MS)}, ${now})
                     RETURNING *`
            await tx`SELECT id FROM account WHERE id = ${account_id} FOR NO KEY UPDATE`
            await tx`DELETE FROM auth_session WHERE account_id = ${account_id} AND (expires_at <= ${now} OR id IN (
                       SELECT id FROM auth_session WHERE account_id = ${account_id} AND expires_at > ${now}
                       ORDER BY id = ${id} DESC, created_at DESC, id DESC OFFSET ${5})) RETURNING id`
          })
        }),
      ],
    ],
    // last: it deletes the seeded sessions (once all are gone, the DELETE finds no row)
    revoke: [
      ["a: SessionRepo", with_repo((repo) => repo.revoke(revoke_token()))],
      [
        "b: raw postgres.js",
        with_raw(
          (sql) => () =>
            sql`DELETE FROM auth_session WHERE id = ${hash_session_token(revoke_token())} RETURNING id`,
        ),
      ],
    ],
  }

  if (parts.includes("operations")) {
    // steady-state validation: statements sent per call, and how many were writes
    const { op, close } = with_repo((repo) => repo.validate(random_token()))()
    await op()
    statements = 0
    for (let i = 0; i < 1000; i++) await op()
    results.statements_per_validate = statements / 1000
    await close()

    const rows: Array<{ operation: string; concurrency: number; variant: string } & Figures> = []
    const ratios: Array<{
      operation: string
      concurrency: number
      a_b: number | undefined
      a_c?: number | undefined
    }> = []
    const only = process.env.BENCH_ONLY // e.g. "validate"
    for (const [operation, variants] of Object.entries(operations).filter(
      ([name]) => !only || name === only,
    )) {
      for (const concurrency of CONCURRENCIES) {
        const figures = await compare(variants, concurrency)
        for (const [variant, f] of figures) rows.push({ operation, concurrency, variant, ...f })
        const [a, b, c] = variants.map(([name]) => figures.get(name))
        ratios.push({ operation, concurrency, a_b: ratio(a, b), ...(c ? { a_c: ratio(a, c) } : {}) })
        console.log(
          `${operation} at concurrency ${concurrency}: a/b ${ratio(a, b)}${c ? `, a/c ${ratio(a, c)}` : ""}`,
        )
      }
    }
    console.table(rows)
    console.log(`statements per steady-state validate: ${results.statements_per_validate}`)
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
  write_results("results.json", results)
} finally {
  await drop()
}
