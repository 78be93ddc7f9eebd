import { assert, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import {
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  auth_session,
  Database,
  hash_session_token,
  query_session_touch,
  SessionTouches,
  session_touch_fire_and_forget,
} from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import {
  count_matching,
  create_account,
  hold_session_locks,
  insert_session,
  install_write_counter,
  now_ms,
  on_db,
  SESSION_UPDATE,
  statements_of,
  write_count,
} from "./support/fixtures.ts"

/** `count` sessions of one account, inserted in one statement. */
const insert_sessions = (account_id: string, count: number) =>
  Effect.gen(function* () {
    const now = new Date(yield* now_ms)
    const rows = Array.from({ length: count }, (_, i) => ({
      id: hash_session_token(`${account_id}-${i}`),
      account_id,
      created_at: now,
      last_seen_at: now,
      expires_at: new Date(now.getTime() + AUTH_SESSION_LIFETIME_MS),
    }))
    yield* on_db((db) => db.insert(auth_session).values(rows))
    return rows.map((row) => row.id)
  })

const touched_count = (account_id: string, since: Date) =>
  on_db((db) =>
    db.$count(
      auth_session,
      sql`${auth_session.account_id} = ${account_id} AND ${auth_session.last_seen_at} > ${since.toISOString()}`,
    ),
  )

for (const backend of backends) {
  layer(backend.layer)(`SessionTouches on ${backend.name}`, (it) => {
    it.effect("a touch within the hour is a HOT update: it writes no index entry", () =>
      Effect.gen(function* () {
        // ten minutes into an hour: the touch a minute later falls in the same hour
        yield* TestClock.setTime(Date.UTC(2026, 11, 2, 10, 10))
        const owner = yield* create_account()
        const { session } = yield* insert_session(owner.id)
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
        const database = yield* Database
        // this transaction's own counts, exact at once (the shared ones lag)
        const [counts] = yield* database.transaction(
          Effect.gen(function* () {
            const expires_at = yield* query_session_touch(session.id)
            assert.strictEqual(expires_at?.getTime(), session.expires_at.getTime(), "a touch, no extension")
            return yield* on_db(
              async (db) =>
                (
                  (await db.execute(sql`SELECT
                  pg_stat_get_xact_tuples_updated('auth_session'::regclass)::int AS updated,
                  pg_stat_get_xact_tuples_hot_updated('auth_session'::regclass)::int AS hot`)) as unknown as {
                    rows: Array<{ updated: number; hot: number }>
                  }
                ).rows,
            )
          }),
        )
        assert.deepStrictEqual(counts, { updated: 1, hot: 1 })
      }),
    )

    it.effect("1,000 concurrent touches of one session send one UPDATE and write once", () =>
      Effect.gen(function* () {
        yield* install_write_counter
        const touches = yield* SessionTouches
        const owner = yield* create_account()
        const { session } = yield* insert_session(owner.id)
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
        const { statements } = yield* statements_of(
          Effect.all(
            Array.from({ length: 1000 }, () => touches.touch(session.id)),
            { concurrency: "unbounded" },
          ).pipe(
            Effect.tap(() => touches.pending.pipe(Effect.map((n) => assert.isAtMost(n, 1)))),
            Effect.andThen(touches.await_idle),
          ),
        )
        assert.strictEqual(count_matching(statements, SESSION_UPDATE), 1)
        assert.strictEqual(yield* write_count(session.id), 1)
        assert.strictEqual(yield* touches.pending, 0)
      }),
    )

    it.effect("a burst of 100,000 touches over 10 sessions keeps at most 10 in flight and memory flat", () =>
      Effect.gen(function* () {
        yield* install_write_counter
        const touches = yield* SessionTouches
        const owner = yield* create_account()
        const ids = yield* insert_sessions(owner.id, 10)
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
        const heap_before = process.memoryUsage().heapUsed
        let most_in_flight = 0
        for (let i = 0; i < 100_000; i++) {
          yield* touches.touch(ids[i % ids.length] as string)
          if (i % 100 === 0) most_in_flight = Math.max(most_in_flight, yield* touches.pending)
        }
        const heap_growth_mb = (process.memoryUsage().heapUsed - heap_before) / 2 ** 20
        yield* touches.await_idle
        console.log(
          `touch burst: 100000 touches, at most ${most_in_flight} in flight, heap +${heap_growth_mb.toFixed(1)} MiB`,
        )
        assert.isAtMost(most_in_flight, ids.length)
        assert.isBelow(heap_growth_mb, 64)
        for (const id of ids) assert.strictEqual(yield* write_count(id), 1)
      }),
    )

    it.effect("a touch started inside a transaction runs on the pool and survives its rollback", () =>
      Effect.gen(function* () {
        yield* install_write_counter
        const database = yield* Database
        const owner = yield* create_account()
        const { session } = yield* insert_session(owner.id)
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
        const outcome = yield* Effect.flip(
          database.transaction(
            session_touch_fire_and_forget(session.id).pipe(
              // On PostgreSQL the touch can finish before the rollback: it must not be undone by it.
              // (On PGlite the pool waits for this transaction, so waiting here would never end.)
              Effect.andThen(
                backend.name === "postgres"
                  ? SessionTouches.use((touches) => touches.await_idle)
                  : Effect.void,
              ),
              Effect.andThen(Effect.fail("rolled back")),
            ),
          ),
        )
        assert.strictEqual(outcome, "rolled back")
        yield* SessionTouches.use((touches) => touches.await_idle)
        assert.strictEqual(yield* write_count(session.id), 1)
      }),
    )

    it.effect("closing the layer finishes 1,000 pending touches instead of dropping them", () =>
      Effect.gen(function* () {
        const _database = yield* Database
        const owner = yield* create_account()
        const ids = yield* insert_sessions(owner.id, 1000)
        const created = new Date(yield* now_ms)
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)

        // Hold the rows (on PGlite: the only connection) so the touches stay pending.
        const release = yield* hold_session_locks(ids)

        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Layer.fresh(SessionTouches.layer), scope)
        const touches = Context.get(context, SessionTouches)
        for (const id of ids) yield* touches.touch(id)
        assert.strictEqual(yield* touches.pending, 1000)

        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* TestClock.withLive(Effect.sleep(300))
        assert.isUndefined(closing.pollUnsafe(), "the layer closed while touches were pending")

        yield* release
        yield* Fiber.join(closing)
        assert.strictEqual(yield* touches.pending, 0)
        assert.strictEqual(yield* touched_count(owner.id, created), 1000)
      }),
    )
  })
}

report_skipped_postgres("SessionTouches")
