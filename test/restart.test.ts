import { exec } from "node:child_process"
import { promisify } from "node:util"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { TestClock } from "effect/testing"
import { SessionRepo } from "../src/index.ts"
import { postgres_backend } from "./support/backends.ts"
import { tally_validations, watch_unhandled_rejections } from "./support/faults.ts"
import { create_account } from "./support/fixtures.ts"

// Restarting the server would break every other suite running at the same
// time, so this file runs alone, with PG_RESTART_COMMAND set (a CI step of its own).
const restart_command = process.env.PG_RESTART_COMMAND
if (restart_command === undefined)
  console.warn("[restart] SKIPPED: PG_RESTART_COMMAND is not set (run this file alone, by hand)")

const now = TestClock.withLive(Effect.sync(() => Date.now()))

if (postgres_backend !== undefined && restart_command !== undefined) {
  layer(postgres_backend.layer)("a PostgreSQL restart", (it) => {
    it.effect(
      "calls during a restart end as a session or a retryable DbError; the pool serves again within 2 s",
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const owner = yield* create_account()
          const { token } = yield* repo.create_session(owner.id)
          const unhandled = watch_unhandled_rejections()
          let running = true
          let slowest_ms = 0
          const load = Effect.gen(function* () {
            const exits = []
            while (running) {
              const began = Date.now()
              exits.push(yield* Effect.exit(repo.validate(token)))
              slowest_ms = Math.max(slowest_ms, Date.now() - began)
            }
            return exits
          })
          const loaders = Effect.all(
            Array.from({ length: 8 }, () => load),
            { concurrency: "unbounded" },
          )
          const restart = Effect.gen(function* () {
            yield* TestClock.withLive(Effect.sleep(200))
            // asynchronous, so the load keeps running through the restart
            yield* Effect.promise(() => promisify(exec)(restart_command))
            const server_up = yield* now
            // keep the load on until the pool has served again
            let recovered_at: number | undefined
            while (recovered_at === undefined && (yield* now) - server_up < 10_000) {
              if (Exit.isSuccess(yield* Effect.exit(repo.validate(token)))) recovered_at = yield* now
              else yield* TestClock.withLive(Effect.sleep(20))
            }
            running = false
            return recovered_at === undefined ? undefined : recovered_at - server_up
          })
          const [exits, recovery_ms] = yield* Effect.all([loaders, restart], { concurrency: "unbounded" })
          unhandled.stop()
          const all = exits.flat()
          const { sessions, retryable } = tally_validations(all)
          console.log(
            `restart: ${all.length} calls, ${sessions} sessions, ${retryable} retryable DbErrors, ` +
              `served again ${recovery_ms} ms after the server was back, slowest call ${slowest_ms} ms, ` +
              `${unhandled.count} unhandled rejections`,
          )
          assert.isDefined(recovery_ms)
          assert.isBelow(recovery_ms ?? Number.POSITIVE_INFINITY, 2000)
          assert.isAbove(retryable, 0, "the restart was not noticed")
          // a restart takes about a second here; no call may wait out the 10 s connect timeout
          assert.isBelow(slowest_ms, 5000)
          assert.strictEqual(unhandled.count, 0)
        }),
    )
  })
} else {
  describe.skip("a PostgreSQL restart", () => {
    it("needs DATABASE_URL and PG_RESTART_COMMAND", () => {})
  })
}
