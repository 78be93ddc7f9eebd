/**
 * A service run the way users run theirs: a plain Node process with no handler
 * for uncaught exceptions or unhandled rejections, so either one ends the
 * process (and fails the test that started it). It drives SessionRepo while
 * the parent test cuts its connections, then closes its layer and prints one
 * JSON report as its last line. It must also exit on its own: a socket or
 * timer left open by the driver keeps it alive and the test times out.
 *
 * Environment: FAULT_DATABASE_URL (a migrated-or-empty database of its own),
 * FAULT_SCENARIO (`create` or `validate`), FAULT_SECONDS (load duration),
 * FAULT_POOL (`app`: the app's own pool handed to layer_postgres_pool).
 */
import { performance } from "node:perf_hooks"
import { drizzle } from "drizzle-orm/node-postgres"
import { Effect, Exit, Layer, Option, Redacted, Scope } from "effect"
import pg from "pg"
import {
  account,
  auth_session,
  Db,
  layer_postgres,
  layer_postgres_pool,
  layer_session_policy,
  migrate,
  SessionRepo,
} from "../../src/index.ts"
import { describe_failure } from "../support/failure.ts"
import { FAULT_MAX_SESSIONS } from "../support/fault-service.ts"

const LOOPS = 8
const ACCOUNTS = 5

const handlers_at_start = {
  uncaught_exception: process.listenerCount("uncaughtException"),
  unhandled_rejection: process.listenerCount("unhandledRejection"),
}

const url = process.env.FAULT_DATABASE_URL
const scenario = process.env.FAULT_SCENARIO
const seconds = Number(process.env.FAULT_SECONDS ?? "10")
if (url === undefined || (scenario !== "create" && scenario !== "validate"))
  throw new Error("FAULT_DATABASE_URL and FAULT_SCENARIO=create|validate are required")

const emit = (event: Record<string, unknown>) => console.log(JSON.stringify(event))

const tally = {
  calls: 0,
  ok: 0,
  retryable: 0,
  commit_unknown: 0,
  unexpected: [] as Array<string>,
  failures: {} as Record<string, number>,
  slowest_ms: 0,
  /** The shortest call that failed: a read that retries fails only after its retry window. */
  fastest_failure_ms: null as number | null,
  /** The longest time with no call succeeding anywhere: the outage as callers saw it. */
  longest_gap_ms: 0,
}

let last_ok_at: number | undefined

const record = (exit: Exit.Exit<unknown, unknown>, elapsed_ms: number) => {
  tally.calls++
  tally.slowest_ms = Math.max(tally.slowest_ms, elapsed_ms)
  if (Exit.isSuccess(exit)) {
    tally.ok++
    const now = performance.now()
    if (last_ok_at !== undefined) tally.longest_gap_ms = Math.max(tally.longest_gap_ms, now - last_ok_at)
    last_ok_at = now
    return
  }
  tally.fastest_failure_ms = Math.min(tally.fastest_failure_ms ?? elapsed_ms, elapsed_ms)
  const failure = describe_failure(exit.cause)
  tally.failures[failure.text] = (tally.failures[failure.text] ?? 0) + 1
  if (failure.commit_unknown) tally.commit_unknown++
  if (failure.retryable) tally.retryable++
  else if (tally.unexpected.length < 20) tally.unexpected.push(failure.text)
}

const load = Effect.gen(function* () {
  yield* migrate
  const repo = yield* SessionRepo
  const suffix = Math.random().toString(36).slice(2)
  const accounts = yield* Db.use((db) =>
    Effect.promise(() =>
      db
        .insert(account)
        .values(Array.from({ length: ACCOUNTS }, (_, i) => ({ username: `fault-${i}-${suffix}` })))
        .returning(),
    ),
  )
  const tokens = yield* Effect.forEach(accounts, (owner) =>
    Effect.map(repo.create_session(owner.id), (created) => created.token),
  )
  const call = (i: number): Effect.Effect<unknown, unknown> =>
    scenario === "create"
      ? repo.create_session(accounts[i % ACCOUNTS]?.id as string, { max_sessions: FAULT_MAX_SESSIONS })
      : Effect.flatMap(repo.validate(tokens[i % ACCOUNTS] as Redacted.Redacted<string>), (session) =>
          Option.isSome(session) ? Effect.void : Effect.die("a live session was not found"),
        )

  emit({ event: "ready" })
  last_ok_at = performance.now()
  const deadline = performance.now() + seconds * 1000
  const loop = (offset: number) =>
    Effect.gen(function* () {
      for (let i = offset; performance.now() < deadline; i += LOOPS) {
        const began = performance.now()
        const exit = yield* Effect.exit(call(i))
        record(exit, performance.now() - began)
      }
    })
  yield* Effect.all(
    Array.from({ length: LOOPS }, (_, offset) => loop(offset)),
    { concurrency: "unbounded" },
  )
  emit({ event: "load_done" })

  // reads after the faults: how long until one is served
  const began = performance.now()
  const read = yield* Effect.exit(repo.validate(tokens[0] as Redacted.Redacted<string>))
  return { read_after_ms: performance.now() - began, read_after_ok: Exit.isSuccess(read) }
})

/**
 * The layer's own pool, or (FAULT_POOL=app) the app's: a plain pg.Pool with
 * no listeners, as an app makes one, handed over as its Drizzle database and
 * closed by the app after the layer.
 */
const app_pool =
  process.env.FAULT_POOL === "app"
    ? new pg.Pool({ connectionString: url, max: LOOPS, application_name: "effect-session-repo" })
    : undefined
const database =
  app_pool === undefined
    ? layer_postgres({ url: Redacted.make(url), pool_size: LOOPS })
    : layer_postgres_pool(drizzle(app_pool))

const program = Effect.gen(function* () {
  const scope = yield* Scope.make()
  const services = yield* Layer.buildWithScope(
    SessionRepo.layer(auth_session).pipe(Layer.provide(layer_session_policy()), Layer.provideMerge(database)),
    scope,
  )
  const after = yield* Effect.provide(load, services)
  const closing = performance.now()
  yield* Scope.close(scope, Exit.void)
  if (app_pool !== undefined) yield* Effect.promise(() => app_pool.end())
  return {
    event: "report",
    scenario,
    handlers_at_start,
    ...tally,
    ...after,
    close_ms: performance.now() - closing,
  }
})

// No catch: a failure here is an unhandled rejection, which ends the process.
Effect.runPromise(program).then(emit)
