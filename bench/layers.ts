// npm run bench:layers: where the time of one validate and one create_session
// goes, layer by layer, on the real PostgreSQL server (DATABASE_URL):
//   raw pg → Drizzle prepared query → Effect statement (Db) →
//   query function (input checks, Clock) → SessionRepo
// and, for validate, the cost of the spans it does not open. Each layer's
// socket writes and bytes per call show that all send the same traffic.
// Every layer runs the same SQL on the same data (npm run bench's 100,000
// sessions over 10,000 accounts). The layers take turns call by call at
// concurrency 1, so a neighbour stealing the shared CPU slows them all alike;
// each layer's mean latency is then compared with raw pg.
// Writes bench/layers.json.
import net from "node:net"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import type pg from "pg"
import {
  AUTH_SESSION_LIFETIME_MS,
  Database,
  Db,
  type Drizzle,
  generate_session_token,
  hash_session_token,
  layer_postgres,
  query_create_session,
  query_session_enforce_limit,
  query_session_get_valid,
  SessionRepo,
  SessionSchema,
} from "../src/index.ts"
import { session_statements, statement_catalog } from "../src/session/statements.ts"
import {
  create_database,
  create_parameters,
  handles_per_connection,
  machine,
  pooled_transaction,
  raw_pool,
  round3,
  seed_sessions,
  server_url,
  write_results,
} from "./harness.ts"
import { raw_create_session, raw_get_valid, SEED } from "./variants.ts"

const standalone = SessionSchema.defaultValue()
const { evict_sessions, insert_session, lock_account, select_session } = session_statements(standalone)
const catalog = statement_catalog(standalone)

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const POOL = 10
const SERVER = server_url("bench:layers")
const { url, drop } = await create_database(SERVER, "layers")

// what Effect.fn would add to the validation path, which opens no span
const with_span = Effect.fn("one")(query_session_get_valid)
const with_two_spans = Effect.fn("two")(with_span)

type Layers = ReadonlyArray<readonly [name: string, op: () => Promise<unknown>]>

/** Runs the layers in turn, one call each, for `seconds`; returns each layer's latencies. */
const take_turns = async (layers: Layers, seconds: number) => {
  const latencies = layers.map(() => [] as Array<number>)
  const deadline = performance.now() + seconds * 1000
  // each round starts one layer later: no layer always follows the same one
  for (let round = 0; performance.now() < deadline; round++) {
    for (let turn = 0; turn < layers.length; turn++) {
      const index = (round + turn) % layers.length
      const start = performance.now()
      await layers[index]?.[1]()
      latencies[index]?.push(performance.now() - start)
    }
  }
  const raw_mean = mean(latencies[0] ?? [])
  return layers.map(([name], index) => {
    const sorted = (latencies[index] ?? []).sort((x, y) => x - y)
    const at = (q: number) => sorted[Math.floor(q * (sorted.length - 1))] ?? 0
    return {
      layer: name,
      calls: sorted.length,
      mean_ms: round3(mean(sorted)),
      p50_ms: round3(at(0.5)),
      p99_ms: round3(at(0.99)),
      // throughput at concurrency 1 relative to raw pg
      vs_raw: Math.round((100 * raw_mean) / mean(sorted)) / 100,
    }
  })
}
/** What one call sends to the server: socket writes and bytes, over `calls` calls made one at a time. */
const wire_per_call = async (op: () => Promise<unknown>, calls: number) => {
  const write = net.Socket.prototype.write
  let [writes, bytes] = [0, 0]
  net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<typeof write>) {
    writes++
    bytes += (args[0] as { length: number }).length
    return write.apply(this, args)
  } as typeof write
  try {
    for (let i = 0; i < calls; i++) await op()
  } finally {
    net.Socket.prototype.write = write
  }
  return { writes: writes / calls, bytes: Math.round(bytes / calls) }
}

const mean = (xs: ReadonlyArray<number>) => xs.reduce((sum, x) => sum + x, 0) / Math.max(1, xs.length)

try {
  const { accounts, tokens } = await seed_sessions(url, SEED)
  const runtime = ManagedRuntime.make(
    SessionRepo.layer.pipe(Layer.provideMerge(layer_postgres({ url: Redacted.make(url), pool_size: POOL }))),
  )
  const run = <A, E>(effect: Effect.Effect<A, E, SessionRepo | Database | Db>) => runtime.runPromise(effect)
  const { pool, database } = await run(
    Effect.gen(function* () {
      return { pool: yield* Db, database: yield* Database }
    }),
  )
  const raw = raw_pool(url, POOL)
  // the Drizzle layer's transactions run as the repo's do (src/db/pool-transaction.ts), on its pool
  const repo_pool = (pool as unknown as { $client: pg.Pool }).$client
  const handle_for = handles_per_connection()

  const random_token = () => tokens[Math.floor(Math.random() * tokens.length)] as string
  const random_account = () => accounts[Math.floor(Math.random() * accounts.length)] as string
  const new_hash = () => hash_session_token(Effect.runSync(generate_session_token))
  // the repo's own prepared query on a handle, executed without Effect
  const drizzle_execute = (name: string, db: Drizzle, params: Record<string, unknown>) =>
    catalog.get(name)?.prepared(db).execute(params)

  const validate: Layers = [
    ["raw pg", () => raw_get_valid(raw, hash_session_token(random_token()))],
    [
      "Drizzle prepared query",
      () =>
        drizzle_execute("session_get_valid", pool, {
          id: hash_session_token(random_token()),
        }) as Promise<unknown>,
    ],
    ["Effect statement", () => run(select_session({ id: hash_session_token(random_token()) }))],
    ["query function", () => run(query_session_get_valid(hash_session_token(random_token())))],
    ["query function, 1 span", () => run(with_span(hash_session_token(random_token())))],
    ["query function, 2 spans", () => run(with_two_spans(hash_session_token(random_token())))],
    ["SessionRepo.validate", () => run(SessionRepo.use((repo) => repo.validate(random_token())))],
  ]

  const create: Layers = [
    ["raw pg", () => raw_create_session(raw, random_account())],
    [
      "Drizzle prepared queries",
      () => {
        const { insert, lock, evict } = create_parameters(new_hash(), random_account())
        return pooled_transaction(repo_pool, async (client) => {
          const tx = handle_for(client)
          await drizzle_execute("session_insert", tx, insert)
          await drizzle_execute("account_lock", tx, lock)
          await drizzle_execute("session_enforce_limit", tx, evict)
        })
      },
    ],
    [
      "Effect transaction + statements",
      () => {
        const { insert, lock, evict } = create_parameters(new_hash(), random_account())
        return run(
          database.transaction(
            Effect.gen(function* () {
              yield* insert_session(insert)
              yield* lock_account(lock)
              yield* evict_sessions(evict)
            }),
          ),
        )
      },
    ],
    [
      "query functions",
      () => {
        const [id, account_id] = [new_hash(), random_account()]
        return run(
          database.transaction(
            Effect.gen(function* () {
              yield* query_create_session(id, account_id, new Date(Date.now() + AUTH_SESSION_LIFETIME_MS))
              yield* query_session_enforce_limit(account_id, 5, { keep: id })
            }),
          ),
        )
      },
    ],
    [
      "SessionRepo.create_session",
      () => run(SessionRepo.use((repo) => repo.create_session(random_account()))),
    ],
  ]

  const results: Record<string, unknown> = { machine: await machine(), seconds_per_operation: SECONDS }
  for (const [operation, layers] of Object.entries({ validate, "create with limit": create })) {
    for (const [, op] of layers) for (let i = 0; i < 200; i++) await op() // prepare, warm the JIT
    const wire = new Map<string, { writes: number; bytes: number }>()
    for (const [name, op] of layers) wire.set(name, await wire_per_call(op, 200))
    const rows = (await take_turns(layers, SECONDS)).map((row) => ({
      ...row,
      writes_per_call: wire.get(row.layer)?.writes,
      bytes_per_call: wire.get(row.layer)?.bytes,
    }))
    console.log(`${operation}, concurrency 1, layers taking turns call by call:`)
    console.table(rows)
    results[operation] = rows
  }
  console.log(results.machine)
  write_results("layers.json", results)
  await raw.end()
  await runtime.dispose()
} finally {
  await drop()
}
