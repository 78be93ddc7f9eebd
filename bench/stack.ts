// The "stack" sections of npm run bench:profile: the client CPU of a steady
// validation (one caller) and of a create with limit (32 callers), layer by
// layer, with the server taken out: a driver that answers on the next turn
// of the event loop, as a socket would. What each layer adds is the
// difference to the one below it. For validate, also a cache hit and a
// miss, and an HTTP request's session through `with_session` (a hit) against
// the same route's 401 without a cookie: bench:http's pair without Node's
// HTTP server.
import { blake3 } from "@noble/hashes/blake3.js"
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js"
import { drizzle } from "drizzle-orm/node-postgres"
import { Effect, Layer, ManagedRuntime } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { median, pooled_transaction, repo_on, run_for } from "./harness.ts"
import {
  CurrentSession,
  Database,
  Db,
  database_context,
  generate_session_token,
  hash_session_token,
  make_session_cache,
  pool_transaction,
  type Rows,
  SECURE_SESSION_COOKIE_NAME,
  SessionCache,
  SessionRepo,
  sending_with,
  with_session,
} from "./package.ts"
import { raw, raw_params, statements } from "./variants.ts"

/** A session row as PostgreSQL sends it (array mode, times as text), valid for days. */
const row_of = (token: string): Rows[number] => {
  const now = Date.now()
  const at = (offset_ms: number) =>
    new Date(now + offset_ms).toISOString().replace("T", " ").replace("Z", "+00")
  const day = 86_400_000
  return [
    hash_session_token(token),
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    at(-day),
    at(20 * day),
    at(600_000), // seen ahead: no touch due
    at(-day),
    at(80 * day),
    null,
    null,
  ]
}

/**
 * The client CPU µs per call of each layer (`cpu_per_call` of it), in
 * interleaved rounds, the first third a warm-up: the machine's drift hits
 * every layer alike. The median of the measured rounds.
 */
const per_layer = async (
  layers: Record<string, () => Promise<unknown>>,
  rounds: number,
  cpu_per_call: (op: () => Promise<unknown>) => Promise<number>,
) => {
  const cpu = new Map<string, Array<number>>()
  for (let round = 0; round < rounds; round++)
    for (const [name, op] of Object.entries(layers)) {
      const us = await cpu_per_call(op)
      if (round >= rounds / 3) cpu.set(name, [...(cpu.get(name) ?? []), us])
    }
  return Object.fromEntries([...cpu].map(([name, us]) => [name, Math.round(10 * median(us)) / 10]))
}

export const stack_figures = async (batch = 5000, rounds = 30) => {
  const token = Effect.runSync(generate_session_token)
  const rows = [row_of(token)]
  const answer = () => new Promise<{ rows: Rows }>((resolve) => setImmediate(() => resolve({ rows })))
  const handle = sending_with(drizzle.mock() as never, answer)
  const database = Layer.succeedContext(
    database_context(
      handle,
      () => Effect.die("no transactions here"),
      async () => {},
    ),
  )
  const runtime = ManagedRuntime.make(repo_on(database))
  /** The repo with a cache that listens (nothing notifies here) and keeps up to `max_entries` readings. */
  const with_cache = (max_entries: number) => {
    const cache = make_session_cache({ max_entries })
    cache.on_listening(true)
    return ManagedRuntime.make(repo_on(database).pipe(Layer.provide(Layer.succeed(SessionCache, cache))))
  }
  // holds the session after one call
  const cached = with_cache(1)
  // a cache of one entry, validating two sessions in turn (the driver answers both): every call misses
  const missing = with_cache(1)
  const other_token = Effect.runSync(generate_session_token)
  let turn = 0
  // bench/http-server.ts's route, on a request with the session's cookie and on one without
  const me = with_session(
    CurrentSession.useSync(({ session }) =>
      HttpServerResponse.jsonUnsafe({ account_id: session.account_id }),
    ),
  )
  const request = (headers: Record<string, string>) =>
    HttpServerRequest.fromWeb(new Request("http://localhost/me", { headers }))
  const signed_in = request({ cookie: `${SECURE_SESSION_COOKIE_NAME}=${token}` })
  const anonymous = request({})
  const serve = (request: HttpServerRequest.HttpServerRequest) =>
    cached.runPromise(Effect.provideService(me, HttpServerRequest.HttpServerRequest, request))
  // for comparison, what 0.4 ran: the general hash, and the statement through
  // Drizzle's prepared query on a handle the layers did not register (as an
  // app's own handle still runs it) over the same answering driver
  const through_drizzle = drizzle({ client: { query: answer } as never })
  const general_hash = (text: string) => bytesToHex(blake3(utf8ToBytes(text)))
  const get = statements.session_get
  const layers: Record<string, () => Promise<unknown>> = {
    "the driver's answer": answer,
    "+ the token's hash": () => answer().then(() => hash_session_token(token)),
    "+ the token's hash, @noble/hashes (0.4)": () => answer().then(() => general_hash(token)),
    "+ the statement (runPromise, values, decoding)": () =>
      runtime.runPromise(get({ id: hash_session_token(token) })),
    "+ the statement through Drizzle (0.4)": () =>
      runtime.runPromise(
        get({ id: hash_session_token(token) }).pipe(Effect.provideService(Db, through_drizzle)),
      ),
    "+ SessionRepo.validate (checks, policy, Option)": () =>
      runtime.runPromise(SessionRepo.use((repo) => repo.validate(token))),
    "SessionRepo.validate, a cache hit": () =>
      cached.runPromise(SessionRepo.use((repo) => repo.validate(token))),
    "SessionRepo.validate, a cache miss": () =>
      missing.runPromise(SessionRepo.use((repo) => repo.validate(turn++ % 2 === 0 ? token : other_token))),
    "GET /me without a cookie (401)": () => serve(anonymous),
    "GET /me through with_session, a cache hit": () => serve(signed_in),
  }
  try {
    return await per_layer(layers, rounds, async (op) => {
      const before = process.cpuUsage()
      for (let i = 0; i < batch; i++) await op()
      const used = process.cpuUsage(before)
      return (used.user + used.system) / batch
    })
  } finally {
    await runtime.dispose()
    await cached.dispose()
    await missing.dispose()
  }
}

/** The session INSERT, alone or as the CTE that also writes its audit row. */
const INSERT = /^(with "changed" as \()?insert/

/**
 * A create with limit, 32 callers at once (where its transaction's cost
 * showed): raw pg's transaction of the three statements, the repo's
 * `Database.transaction` of the same statements, and `create_session`. The
 * driver answers the INSERT (alone, or in the CTE that writes its audit row)
 * with a session row and everything else with none.
 */
export const create_stack_figures = async (seconds = 0.3, rounds = 15) => {
  const account_id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
  const session_row = row_of(Effect.runSync(generate_session_token))
  const answer = (query: { readonly text?: string }) =>
    new Promise<{ rows: Rows }>((resolve) =>
      setImmediate(() => resolve({ rows: INSERT.test(query.text ?? "") ? [session_row] : [] })),
    )
  const connection = { query: answer, release: () => {}, listeners: () => [], on: () => connection }
  const pool = { connect: async () => connection, query: answer } as never
  const connection_handle = sending_with(drizzle.mock() as never, (sql) => answer(sql))
  const database = Layer.succeedContext(
    database_context(
      sending_with(drizzle.mock() as never, (sql) => answer(sql)),
      pool_transaction(pool, () => connection_handle),
      async () => {},
    ),
  )
  const runtime = ManagedRuntime.make(repo_on(database))
  const params = () =>
    raw_params.create(account_id, hash_session_token(Effect.runSync(generate_session_token)))
  const layers: Record<string, () => Promise<unknown>> = {
    "raw pg: BEGIN, the three statements, COMMIT": () => {
      const { insert, lock, evict } = params()
      return pooled_transaction(pool, async (client) => {
        await raw(client, statements.create_session, insert)
        await raw(client, statements.session_enforce_limit_lock, lock)
        return raw(client, statements.session_enforce_limit, evict)
      })
    },
    "Database.transaction of the same statements": () => {
      const { insert, lock, evict } = params()
      return runtime.runPromise(
        Database.use((db) =>
          db.transaction(
            Effect.andThen(statements.create_session(insert), () =>
              Effect.andThen(
                statements.session_enforce_limit_lock(lock),
                statements.session_enforce_limit(evict),
              ),
            ),
          ),
        ),
      )
    },
    "SessionRepo.create_session": () =>
      runtime.runPromise(SessionRepo.use((repo) => repo.create_session(account_id))),
  }
  try {
    return await per_layer(layers, rounds, async (op) => {
      const slice = await run_for(op, 32, seconds)
      return slice.cpu_us / slice.latencies.length
    })
  } finally {
    await runtime.dispose()
  }
}
