import { exec } from "node:child_process"
import { promisify } from "node:util"
import { assert, beforeAll, describe, it } from "vitest"
import { READ_RETRY_WINDOW_MS } from "../src/index.ts"
import { admin_client } from "./support/admin.ts"
import { server_url } from "./support/backends.ts"
import {
  assert_service_lived,
  FAULT_MAX_SESSIONS,
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

const postmaster_started = async (url: string): Promise<string> => {
  const admin = await admin_client(url)
  try {
    const { rows } = await admin.query<{ at: string }>("SELECT pg_postmaster_start_time()::text AS at")
    return rows[0]?.at ?? ""
  } finally {
    await admin.end()
  }
}

/** Restarts the server a second into the load; says how long the command took and whether the server did restart. */
const restart_server = (command: string, url: string) => async () => {
  await new Promise((r) => setTimeout(r, 1000))
  const before = await postmaster_started(url)
  const began = performance.now()
  await promisify(exec)(command)
  const restart_ms = Math.round(performance.now() - began)
  return { restart_ms, restarted: (await postmaster_started(url)) !== before }
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
            inject: restart_server(restart_command, server),
          })
          const report = assert_service_lived(run, `restart (${transport}, ${scenario})`)
          assert.isTrue(run.injected.restarted, "the server did not restart")
          if (scenario === "validate" && report.fastest_failure_ms !== null)
            assert.isAtLeast(
              report.fastest_failure_ms,
              READ_RETRY_WINDOW_MS,
              "a read failed inside its retry window",
            )
          if (scenario === "create") {
            assert.isAbove(report.retryable, 0, "the restart was not noticed")
            assert.isAtMost(run.most_sessions, FAULT_MAX_SESSIONS)
          }
          // nothing was served for about as long as the server was down, not longer
          assert.isBelow(report.longest_gap_ms, run.injected.restart_ms + 1000)
        }, 60_000)
      }
    }
  })
}
