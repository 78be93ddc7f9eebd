import { assert, describe, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { AUTH_SESSION_TOUCH_INTERVAL_MS, SessionRepo, SessionTouches } from "../src/index.ts"
import { postgres_backend, report_skipped_postgres } from "./support/backends.ts"
import { create_account, install_write_counter, on_db } from "./support/fixtures.ts"

const SESSIONS = 100
// 2 validations per session per second: 120 per touch interval (the bench-sized
// 1,000 a second takes a minute of CI time for the same property)
const PER_SECOND = 200
const SECONDS = 5 * 60

// The origin writes last_seen_at on every request.
if (postgres_backend !== undefined) {
  layer(postgres_backend.layer)("touch write budget on postgres", (it) => {
    it.effect(
      `${PER_SECOND} validations a second over ${SESSIONS} sessions for ${SECONDS / 60} minutes write each session at most once per touch interval`,
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const touches = yield* SessionTouches
          yield* install_write_counter
          const tokens = yield* Effect.forEach(Array.from({ length: SESSIONS }), () =>
            Effect.flatMap(create_account(), (owner) =>
              Effect.map(repo.create_session(owner.id), (s) => s.token),
            ),
          )
          for (let second = 0; second < SECONDS; second++) {
            const valid = yield* Effect.forEach(
              Array.from({ length: PER_SECOND }),
              (_, i) => repo.validate(tokens[i % SESSIONS] as (typeof tokens)[number]),
              { concurrency: 32 },
            )
            assert.isTrue(valid.every((session) => session._tag === "Some"))
            yield* touches.await_idle
            yield* TestClock.adjust("1 second")
          }
          const writes = yield* on_db((db) =>
            db.execute(
              sql`SELECT session_id, count(*)::int AS n FROM test_session_writes GROUP BY session_id`,
            ),
          )
          const per_session = (writes as unknown as { rows: Array<{ n: number }> }).rows.map((row) => row.n)
          const total = per_session.reduce((sum, n) => sum + n, 0)
          const budget = Math.ceil((SECONDS * 1000) / AUTH_SESSION_TOUCH_INTERVAL_MS)
          console.log(
            `touch budget: ${SECONDS * PER_SECOND} validations, ${total} writes ` +
              `(${(total / SESSIONS / (SECONDS / 60)).toFixed(2)} per session per minute; the origin: ${(PER_SECOND * 60) / SESSIONS}), ` +
              `at most ${Math.max(...per_session)} per session (budget ${budget})`,
          )
          assert.isAbove(total, 0)
          assert.isAtMost(Math.max(...per_session), budget)
        }),
      120_000,
    )
  })
} else {
  describe("touch write budget", () => {
    report_skipped_postgres("touch write budget")
  })
}
