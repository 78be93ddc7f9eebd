// npm run bench:overhead: the client CPU each layer of the stack adds to a
// call, without a server. Drizzle's node-postgres driver runs on a stand-in
// for a pg pool and its pooled connections that answers every query at once
// with a fixed row, so only JavaScript runs: no socket, no server, no waiting.
// For validate, revoke and create with limit, the same call runs through
//   the stand-in client directly → Drizzle's prepared queries → Effect
//   statements (Db) → the query functions as SessionRepo runs them (input
//   checks, Clock; revoke's span) → SessionRepo
// one call at a time, each layer in turn (the order rotating) for several
// rounds; the median of each layer's process CPU time per call is reported.
// (npm run bench:layers times the same layers against the real server.)
// Writes overhead.json to bench/ or BENCH_RESULTS_DIR.
import { drizzle } from "drizzle-orm/node-postgres"
import { Effect, Layer, ManagedRuntime } from "effect"
import { database_context } from "../src/db/database.ts"
import { pool_transaction } from "../src/db/pool-transaction.ts"
import {
  AUTH_SESSION_LIFETIME_MS,
  Database,
  type Db,
  type Drizzle,
  generate_session_token,
  hash_session_token,
  query_session_get_valid,
  query_session_revoke_by_hash,
  SessionRepo,
  SessionSchema,
} from "../src/index.ts"
import { create_session_untraced, enforce_limit_untraced } from "../src/session/queries.ts"
import { session_statements, statement_catalog } from "../src/session/statements.ts"
import {
  create_parameters,
  handles_per_connection,
  machine,
  median,
  pooled_transaction,
  write_results,
} from "./harness.ts"

const standalone = SessionSchema.defaultValue()
const { delete_session, evict_sessions, insert_session, lock_account, select_session } =
  session_statements(standalone)
const catalog = statement_catalog(standalone)

const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 20_000)
const ROUNDS = 7

const ACCOUNT = "0b6f5a3c-3f1e-4a57-9c7e-2d2f4b1a9e10"
// a live session, seen ahead: validations find it and owe no touch
const ahead = (ms: number) => new Date(Date.now() + ms).toISOString()
// the columns in the order the session statements select them
const SESSION_ROW = [
  "a".repeat(64),
  ACCOUNT,
  ahead(0),
  ahead(AUTH_SESSION_LIFETIME_MS),
  ahead(600_000),
  ahead(0),
  ahead(3 * AUTH_SESSION_LIFETIME_MS),
  null,
  null,
]
const SESSION_OBJECT = {
  id: SESSION_ROW[0],
  account_id: ACCOUNT,
  created_at: SESSION_ROW[2],
  expires_at: SESSION_ROW[3],
  last_seen_at: SESSION_ROW[4],
  authenticated_at: SESSION_ROW[5],
  absolute_expires_at: SESSION_ROW[6],
  client_ip: null,
  user_agent: null,
}

interface QueryConfig {
  readonly text: string
  readonly rowMode?: string
}
interface Result {
  readonly rows: Array<unknown>
  readonly fields: []
  readonly rowCount: number
  readonly command: string
}

/**
 * What a pg client answers, at once: one session row to a select or an insert,
 * one id to the rest, no row to BEGIN, COMMIT or ROLLBACK. Rows are arrays of
 * column values in select order when Drizzle asks for rowMode "array" (its
 * queries with fields), objects otherwise, as pg returns them.
 */
const answer = (config: string | QueryConfig, _values?: ReadonlyArray<unknown>): Promise<Result> => {
  const { text, rowMode } = typeof config === "string" ? { text: config, rowMode: undefined } : config
  const command = (text.split(" ", 1)[0] ?? "").toUpperCase()
  const session = command === "SELECT" || command === "INSERT"
  const rows =
    command === "BEGIN" || command === "COMMIT" || command === "ROLLBACK"
      ? []
      : rowMode === "array"
        ? [session ? SESSION_ROW : [ACCOUNT]]
        : [session ? SESSION_OBJECT : { id: ACCOUNT }]
  return Promise.resolve({ rows, fields: [], rowCount: rows.length, command })
}

/** A stand-in pg.PoolClient: the answers above; release does nothing. */
const stand_in_client = { query: answer, release: (_error?: Error) => {} }
/** A stand-in pg.Pool: the same answers, and one connection to hand out. */
const stand_in_pool = { query: answer, connect: () => Promise.resolve(stand_in_client) }

const pool = drizzle({ client: stand_in_pool as never }) as unknown as Drizzle
// one handle per connection, shared by the repo's transactions and the Drizzle layer's
const handle_for = handles_per_connection()
const runtime = ManagedRuntime.make(
  SessionRepo.layer.pipe(
    Layer.provideMerge(
      Layer.succeedContext(
        database_context(pool, pool_transaction(stand_in_pool as never, handle_for), async () => {}),
      ),
    ),
  ),
)
const run = <A, E>(effect: Effect.Effect<A, E, SessionRepo | Database | Db>) => runtime.runPromise(effect)
const database = await run(Database)
const prepared = (name: string, db: Drizzle) => {
  const statement = catalog.get(name)
  if (statement === undefined) throw new Error(`no statement ${name}`)
  return statement.prepared(db)
}
const token = Effect.runSync(generate_session_token)
const new_hash = () => hash_session_token(Effect.runSync(generate_session_token))

type Layers = ReadonlyArray<readonly [name: string, call: () => Promise<unknown>]>

const operations: Record<string, Layers> = {
  validate: [
    [
      "stand-in client",
      () =>
        stand_in_pool.query({ text: "select", rowMode: "array" }, [hash_session_token(token), new Date()]),
    ],
    [
      "Drizzle prepared query",
      () => prepared("session_get_valid", pool).execute({ id: hash_session_token(token) }),
    ],
    ["Effect statement", () => run(select_session({ id: hash_session_token(token) }))],
    ["query function (check, Clock)", () => run(query_session_get_valid(hash_session_token(token)))],
    ["SessionRepo.validate", () => run(SessionRepo.use((repo) => repo.validate(token)))],
  ],
  revoke: [
    [
      "stand-in client",
      () => stand_in_pool.query({ text: "delete", rowMode: "array" }, [hash_session_token(token)]),
    ],
    [
      "Drizzle prepared query",
      () => prepared("session_revoke_by_hash", pool).execute({ id: hash_session_token(token) }),
    ],
    ["Effect statement", () => run(delete_session({ id: hash_session_token(token) }))],
    ["query function (check, span)", () => run(query_session_revoke_by_hash(hash_session_token(token)))],
    ["SessionRepo.revoke", () => run(SessionRepo.use((repo) => repo.revoke(token)))],
  ],
  "create with limit": [
    [
      "stand-in client",
      () => {
        const [id, now] = [new_hash(), new Date()]
        return pooled_transaction(stand_in_pool as never, async (client) => {
          await client.query({ text: "insert", rowMode: "array" }, [id, ACCOUNT, now])
          await client.query({ text: "lock", rowMode: "array" }, [ACCOUNT])
          await client.query({ text: "delete", rowMode: "array" }, [ACCOUNT, now, id, 5])
        })
      },
    ],
    [
      "Drizzle prepared queries",
      () => {
        const { insert, lock, evict } = create_parameters(new_hash(), ACCOUNT)
        return pooled_transaction(stand_in_pool as never, async (client) => {
          const tx = handle_for(client)
          await prepared("session_insert", tx).execute(insert)
          await prepared("account_lock", tx).execute(lock)
          await prepared("session_enforce_limit", tx).execute(evict)
        })
      },
    ],
    [
      "Effect transaction + statements",
      () => {
        const { insert, lock, evict } = create_parameters(new_hash(), ACCOUNT)
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
      "query functions' bodies (checks, Clock)",
      () => {
        const id = new_hash()
        return run(
          database.transaction(
            Effect.gen(function* () {
              yield* create_session_untraced(id, ACCOUNT, new Date(Date.now() + AUTH_SESSION_LIFETIME_MS))
              yield* enforce_limit_untraced(ACCOUNT, 5, { keep: id })
            }),
          ),
        )
      },
    ],
    ["SessionRepo.create_session", () => run(SessionRepo.use((repo) => repo.create_session(ACCOUNT)))],
  ],
}

/** Process CPU time (µs) of `calls` calls made one at a time. */
const cpu_of = async (call: () => Promise<unknown>, calls: number) => {
  const before = process.cpuUsage()
  for (let i = 0; i < calls; i++) await call()
  const used = process.cpuUsage(before)
  return used.user + used.system
}

const results: Record<string, unknown> = { machine: await machine(), calls_per_round: CALLS_PER_ROUND }
for (const [operation, layers] of Object.entries(operations)) {
  const rounds = layers.map(() => [] as Array<number>)
  // the first round warms the JIT and is not counted; each round starts one layer later
  for (let round = 0; round <= ROUNDS; round++) {
    for (let turn = 0; turn < layers.length; turn++) {
      const index = (round + turn) % layers.length
      const [, call] = layers[index] ?? []
      if (call === undefined) continue
      const cpu_us = await cpu_of(call, CALLS_PER_ROUND)
      if (round > 0) rounds[index]?.push(cpu_us / CALLS_PER_ROUND)
    }
  }
  let previous = 0
  const rows = layers.map(([layer], index) => {
    const us = median(rounds[index] ?? [])
    const row = { layer, "µs per call": us.toFixed(1), "added by this layer": (us - previous).toFixed(1) }
    previous = us
    return row
  })
  console.log(`${operation}: client CPU per call, no server (median of ${ROUNDS} rounds):`)
  console.table(rows)
  results[operation] = rows
}
console.log(results.machine)
write_results("overhead.json", results)
await runtime.dispose()
