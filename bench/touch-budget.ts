// npm run bench:touches: 1,000 validations a second over 100 sessions for 5
// minutes of TestClock time against PostgreSQL (DATABASE_URL); counts the rows
// really written with a trigger. The origin writes on every validation.
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { TestClock } from "effect/testing"
import {
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  layer_postgres,
  migrate,
  SessionRepo,
  SessionTouches,
} from "../src/index.ts"
import { admin_client, create_database, machine, server_url, write_results } from "./harness.ts"

const SESSIONS = 100
const PER_SECOND = 1000
const SECONDS = 5 * 60

const { url, drop } = await create_database(server_url("bench:touches"), "touches")
const runtime = ManagedRuntime.make(
  SessionRepo.layer.pipe(
    Layer.provideMerge(layer_postgres({ url: Redacted.make(url), pool_size: 10 })),
    Layer.provideMerge(TestClock.layer()),
  ),
)
const client = await admin_client(url)
try {
  await runtime.runPromise(migrate)
  await client.query("CREATE TABLE session_writes (session_id text NOT NULL)")
  await client.query(`CREATE FUNCTION count_session_write() RETURNS trigger LANGUAGE plpgsql AS $$
                      BEGIN INSERT INTO session_writes VALUES (NEW.id); RETURN NULL; END $$`)
  await client.query(`CREATE TRIGGER count_session_write AFTER UPDATE ON auth_session
                      FOR EACH ROW EXECUTE FUNCTION count_session_write()`)
  const accounts = (
    await client.query(
      "INSERT INTO account (username) SELECT 'user' || i FROM generate_series(1, $1) i RETURNING id",
      [SESSIONS],
    )
  ).rows
  const started = performance.now()
  const validations = await runtime.runPromise(
    Effect.gen(function* () {
      const repo = yield* SessionRepo
      const touches = yield* SessionTouches
      const tokens = yield* Effect.forEach(accounts, (row) =>
        Effect.map(repo.create_session(String(row.id)), (created) => created.token),
      )
      let validations = 0
      for (let second = 0; second < SECONDS; second++) {
        yield* Effect.forEach(
          Array.from({ length: PER_SECOND }),
          (_, i) => repo.validate(tokens[i % SESSIONS] as (typeof tokens)[number]),
          { concurrency: 32, discard: true },
        )
        validations += PER_SECOND
        yield* touches.await_idle
        yield* TestClock.adjust("1 second")
      }
      return validations
    }),
  )
  const per_session = (
    await client.query("SELECT count(*)::int AS n FROM session_writes GROUP BY session_id")
  ).rows.map((row) => Number(row.n))
  const writes = per_session.reduce((sum, n) => sum + n, 0)
  const results = {
    machine: await machine(),
    validations,
    seconds_of_test_clock: SECONDS,
    wall_seconds: Math.round((performance.now() - started) / 1000),
    writes,
    writes_per_session_per_minute: writes / SESSIONS / (SECONDS / 60),
    most_writes_of_one_session: Math.max(...per_session),
    budget_per_session: Math.ceil((SECONDS * 1000) / AUTH_SESSION_TOUCH_INTERVAL_MS),
    origin_writes_per_session_per_minute: (PER_SECOND * 60) / SESSIONS,
  }
  console.log(results)
  write_results("touch-budget.json", results)
} finally {
  await client.end()
  await runtime.dispose()
  await drop()
}
