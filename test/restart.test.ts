import { exec } from "node:child_process"
import { promisify } from "node:util"
import { assert, beforeAll, describe, it } from "vitest"
import { READ_RETRY_WINDOW_MS } from "../src/index.ts"
import { admin_client } from "./support/admin.ts"
import { server_url } from "./support/backends.ts"
import {
  FAULT_MAX_SESSIONS,
  failure_text,
  run_fault_service,
  server_has_tls,
} from "./support/fault-service.ts"

// A server restart under load, in a service process with no handlers (see
// test/faults.test.ts). Restarting the server breaks every other suite running
// at the same time, so this file runs alone, with PG_RESTART_COMMAND set (a CI
// step of its own).
const restart_command = process.env.PG_RESTART_COMMAND
if (restart_command === undefined)
  console.warn("[restart] SKIPPED: PG_RESTART_COMMAND is not set (run this file alone, by hand)")

const SECONDS = 6
const CLOSE_BOUND_MS = 1000

/** Restarts the server a second into the load; returns how long the restart command took. */
const restart_server = (command: string) => async () => {
  await new Promise((r) => setTimeout(r, 1000))
  const began = performance.now()
  await promisify(exec)(command)
  return { restart_ms: Math.round(performance.now() - began) }
}

if (server_url === undefined || restart_command === undefined) {
  describe.skip("a PostgreSQL restart in a service process", () => {
    it("needs DATABASE_URL and PG_RESTART_COMMAND", () => {})
  })
} else {
  const server = server_url
  describe("a PostgreSQL restart in a service process", () => {
    let tls = false
    beforeAll(async () => {
      const probe = await admin_client(server)
      tls = await server_has_tls(probe, "restart")
      await probe.end()
    })

    for (const transport of ["tcp", "tls"] as const) {
      for (const scenario of ["validate", "create"] as const) {
        it(`${transport}, ${scenario}: the process lives, failures are retryable DbErrors, reads fail only past their retry window, the pool serves again and closes quickly`, async (context) => {
          if (transport === "tls" && !tls) return context.skip()
          const run = await run_fault_service({
            server_url: server,
            scenario,
            transport,
            seconds: SECONDS,
            inject: restart_server(restart_command),
          })
          const { report } = run
          assert.isDefined(report, `no report: ${failure_text(run)}`)
          console.log(
            `restart (${transport}, ${scenario}): ${JSON.stringify({ ...run.injected, ...report })}`,
          )
          assert.strictEqual(run.code, 0, failure_text(run))
          assert.deepStrictEqual(report?.handlers_at_start, { uncaught_exception: 0, unhandled_rejection: 0 })
          assert.deepStrictEqual(report?.unexpected, [])
          assert.isAbove(report?.ok ?? 0, 0)
          if (scenario === "validate" && report?.fastest_failure_ms !== null)
            assert.isAtLeast(
              report?.fastest_failure_ms ?? 0,
              READ_RETRY_WINDOW_MS,
              "a read failed inside its retry window",
            )
          if (scenario === "create") {
            assert.isAbove(report?.retryable ?? 0, 0, "the restart was not noticed")
            assert.isAtMost(run.most_sessions, FAULT_MAX_SESSIONS)
          }
          // nothing was served for about as long as the server was down, not longer
          assert.isBelow(report?.longest_gap_ms ?? Number.POSITIVE_INFINITY, run.injected.restart_ms + 1000)
          assert.isTrue(report?.read_after_ok)
          assert.isBelow(report?.close_ms ?? Number.POSITIVE_INFINITY, CLOSE_BOUND_MS)
        }, 60_000)
      }
    }
  })
}
