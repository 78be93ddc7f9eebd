import type pg from "pg"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { READ_RETRY_WINDOW_MS } from "../src/index.ts"
import { admin_client } from "./support/admin.ts"
import { report_skipped_postgres, server_url } from "./support/backends.ts"
import {
  assert_service_lived,
  CLOSE_BOUND_MS,
  FAULT_MAX_SESSIONS,
  kill_every_second,
  type Pool,
  run_fault_service,
  type Scenario,
  server_has_tls,
  type Transport,
} from "./support/fault-service.ts"

// Connection loss as a user's service meets it: the service runs in a child
// Node process with no handlers (test/fault/service.ts), where an uncaught
// exception or unhandled rejection ends the process, and every backend it
// holds is terminated once a second. Over plain TCP and over TLS.

/** The load's length: four or five rounds of kills (a kill a second), each case covered in every round. */
const SECONDS = 5

if (server_url === undefined) {
  describe("connection faults in a service process", () => {
    report_skipped_postgres("connection faults")
  })
} else {
  const server = server_url
  describe("connection faults in a service process", () => {
    let admin: pg.Client
    let tls = false
    beforeAll(async () => {
      admin = await admin_client(server)
      tls = await server_has_tls(admin, "faults")
    })
    afterAll(() => admin?.end())

    const run_with_kills = (scenario: Scenario, transport: Transport, pool: Pool) =>
      run_fault_service({
        server_url: server,
        scenario,
        transport,
        pool,
        seconds: SECONDS,
        inject: (database, load_done) => kill_every_second(admin, database, load_done),
      })

    /** The scenario under kills; every run shows `assert_service_lived`, with backends (TLS ones when asked) killed. */
    const survived_kills = async (scenario: Scenario, transport: Transport, pool: Pool = "layer") => {
      const run = await run_with_kills(scenario, transport, pool)
      const report = assert_service_lived(run, `faults (${transport}, ${scenario}, ${pool}'s pool)`)
      assert.isAbove(run.injected.terminated, 0)
      if (transport === "tls")
        assert.strictEqual(run.injected.over_tls, run.injected.terminated, "a connection was not TLS")
      return { report, most_sessions: run.most_sessions }
    }

    for (const transport of ["tcp", "tls"] as const) {
      it(`${transport}: backends killed every second during creates: the process lives, every failure is a retryable DbError, no account passes its limit, the pool closes in under ${CLOSE_BOUND_MS} ms`, async (context) => {
        if (transport === "tls" && !tls) return context.skip()
        const { most_sessions } = await survived_kills("create", transport)
        assert.isAtMost(most_sessions, FAULT_MAX_SESSIONS)
      }, 60_000)

      it(`${transport}: backends killed every second during validations: the process lives and every read is served, retried on a new connection`, async (context) => {
        if (transport === "tls" && !tls) return context.skip()
        const { report } = await survived_kills("validate", transport)
        // the server takes new connections at once after a kill: a read that retries never fails
        assert.strictEqual(report.ok, report.calls, JSON.stringify(report.failures))
        assert.isBelow(report.slowest_ms, READ_RETRY_WINDOW_MS)
      }, 60_000)
    }

    // layer_postgres_pool: the app's own pool, made with no listeners, gets the same guarantees
    it("the app's pool: backends killed every second during creates and validations: the same guarantees", async () => {
      const created = await survived_kills("create", "tcp", "app")
      assert.isAtMost(created.most_sessions, FAULT_MAX_SESSIONS)
      const { report } = await survived_kills("validate", "tcp", "app")
      assert.strictEqual(report.ok, report.calls, JSON.stringify(report.failures))
    }, 90_000)
  })
}
