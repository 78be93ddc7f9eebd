import { assert, describe, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Effect, Exit, Option } from "effect"
import { TestClock } from "effect/testing"
import postgres from "postgres"
import { SessionRepo } from "../src/index.ts"
import { postgres_backend, report_skipped_postgres, server_url } from "./support/backends.ts"
import { create_account, on_db } from "./support/fixtures.ts"

const VALIDATIONS = 1000
const CONCURRENCY = 32

/** Terminates every backend of this test database that the app's pool holds. */
const terminate_app_connections = (database: string) =>
  Effect.promise(async () => {
    const admin = postgres(server_url as string, { max: 1, onnotice: () => {} })
    try {
      const rows = await admin`
        SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
        WHERE datname = ${database} AND application_name = 'effect-session-repo'`
      return rows.length
    } finally {
      await admin.end()
    }
  })

/** This test file's own database (PostgreSQL only). */
const current_database = on_db((db) => db.execute(sql`SELECT current_database() AS name`)).pipe(
  Effect.map((rows) => String((rows as unknown as Array<{ name: string }>)[0]?.name)),
)

// Faults need a real server: PGlite has no connections to lose.
if (postgres_backend !== undefined) {
  layer(postgres_backend.layer)("faults on postgres", (it) => {
    it.effect(
      `every backend killed during ${VALIDATIONS} validations at concurrency ${CONCURRENCY}: each ends as a session or a retryable DbError, and the pool recovers`,
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const owner = yield* create_account()
          const { token } = yield* repo.create_session(owner.id)
          const db_name = yield* current_database
          let unhandled = 0
          const count_unhandled = () => {
            unhandled++
          }
          process.on("unhandledRejection", count_unhandled)

          let started = 0
          const durations: Array<number> = []
          const killer = Effect.gen(function* () {
            // wait until the run is under way, then cut every connection
            while (started < 100) yield* TestClock.withLive(Effect.sleep(1))
            return yield* terminate_app_connections(db_name)
          })
          const [exits, terminated] = yield* Effect.all(
            [
              Effect.forEach(
                Array.from({ length: VALIDATIONS }),
                () =>
                  Effect.suspend(() => {
                    started++
                    const began = Date.now()
                    return Effect.exit(repo.validate(token)).pipe(
                      Effect.tap(() => Effect.sync(() => durations.push(Date.now() - began))),
                    )
                  }),
                { concurrency: CONCURRENCY },
              ),
              killer,
            ],
            { concurrency: "unbounded" },
          )

          let sessions = 0
          let retryable = 0
          for (const exit of exits) {
            if (Exit.isSuccess(exit)) {
              assert.isTrue(Option.isSome(exit.value))
              sessions++
              continue
            }
            const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
            assert.isDefined(error, `a validation died instead of failing: ${String(exit.cause)}`)
            const failure = (error as { error: { _tag: string; is_retryable: boolean } }).error
            assert.strictEqual(failure._tag, "DbError")
            assert.isTrue(failure.is_retryable)
            retryable++
          }

          // the pool serves again, quickly
          const started_at = yield* TestClock.withLive(Effect.sync(() => Date.now()))
          let recovered = false
          while (
            !recovered &&
            (yield* TestClock.withLive(Effect.sync(() => Date.now()))) - started_at < 2000
          ) {
            recovered = Exit.isSuccess(yield* Effect.exit(repo.validate(token)))
            if (!recovered) yield* TestClock.withLive(Effect.sleep(10))
          }
          const recovery_ms = (yield* TestClock.withLive(Effect.sync(() => Date.now()))) - started_at
          process.off("unhandledRejection", count_unhandled)
          console.log(
            `faults: ${terminated} connections terminated; ${sessions} sessions, ${retryable} retryable DbErrors, ` +
              `recovered in ${recovery_ms} ms, ${unhandled} unhandled rejections, slowest call ${Math.max(...durations)} ms`,
          )
          assert.isAbove(terminated, 0)
          assert.strictEqual(sessions + retryable, VALIDATIONS)
          assert.isTrue(recovered, "the pool did not serve again within 2 s")
          assert.strictEqual(unhandled, 0)
        }),
      // under a full parallel run a reconnect can take the whole connect timeout more than once
      120_000,
    )
  })
} else {
  describe("faults", () => {
    report_skipped_postgres("faults")
  })
}
