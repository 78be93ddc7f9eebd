import { readFileSync } from "node:fs"
import { assert, beforeAll, describe, it } from "vitest"
import { assert_service_lived, FAULT_MAX_SESSIONS, type FaultReport } from "./support/fault-service.ts"
import {
  type HaFormation,
  type HaNode,
  ha_available,
  ha_formation,
  ha_required,
  ha_script_async,
} from "./support/ha-formation.ts"
import {
  check_ha_run,
  find_primary,
  type HaFault,
  type HaRun,
  read_postmaster_pid,
  run_ha_service,
  without_sslmode_prefer,
} from "./support/ha-service.ts"

// Failovers of a highly available PostgreSQL formation (.ci/ha-formation.sh: a
// pg_auto_failover monitor and two nodes in synchronous replication) under a
// service's load: the service runs in a plain child Node process with no
// handlers (test/fault/ha-service.ts) and reaches the formation through its
// multi-host URI (target_session_attrs=read-write), its writes waiting for a
// standby (writes_wait_for_standby: without it a write the restarted old
// primary took while its standby was being promoted was lost, once in CI:
// docs/design.md); in the middle of its load
// the primary is failed over as planned, its postmaster is killed, or its
// whole node (pg_autoctl too) is. Then what the service was told is checked
// against the rows of the primary after the fault (test/support/ha-service.ts:
// no session it was given is missing unless revoked or evicted, no revoke
// that returned is undone, no account above its limit) and the time to the
// first write on the new primary is logged (`ha: <fault>: first write after
// X ms`), with the failed calls by DbError reason.
//
// Runs with REQUIRE_HA=1 or HA_URL: the file then brings the formation up
// itself through ha_formation() (kept as it is when up and healthy; made
// otherwise, as root: about 10 s), in HA_DIR on HA_PORT_BASE as the script
// reads them, and connects through HA_URL if set, else through the URI
// pg_autoctl prints. Without either it is skipped, and reported so; with
// REQUIRE_HA=1 and no formation to be had, it fails. Each run fails the
// formation over three times and leaves it up, healthy (`bash
// .ci/ha-formation.sh down` removes it). Run it alone (about 100 s):
// `REQUIRE_HA=1 npx vitest run test/ha-failover.test.ts`.

/**
 * The load's length, and when into it the fault comes. Writes wait for a
 * standby: after a failover none returns until the old primary has rejoined
 * as one (5 to 14 s after a planned failover in CI, pg_rewind included).
 */
const SECONDS = 24
const FAULT_AFTER_MS = 3000
/**
 * A node that dies whole is failed over only once the monitor has found it
 * unhealthy (3 s here) and waited for it to demote itself (5 s), and writes
 * return again once it has rejoined as a standby (a few seconds more): the
 * load goes on for long enough to see them.
 */
const NODE_KILL_SECONDS = 22

if (!ha_available()) {
  console.warn(
    "[ha-failover] SKIPPED: no HA formation (REQUIRE_HA=1 starts one with .ci/ha-formation.sh, as root; HA_URL names one that runs)",
  )
  describe.skip("failovers of a PostgreSQL formation under a service's load", () => {
    it("needs REQUIRE_HA=1 or HA_URL", () => {})
  })
} else {
  describe("failovers of a PostgreSQL formation under a service's load", () => {
    let formation: HaFormation
    let uri = ""
    beforeAll(() => {
      formation = ha_formation()
      uri = without_sslmode_prefer(process.env.HA_URL ?? formation.uri)
      assert.match(
        uri,
        /[?&]target_session_attrs=read-write(&|$)/,
        "the formation's URI must ask for read-write",
      )
      console.log(`ha: formation ${uri}${ha_required() ? " (REQUIRE_HA=1)" : ""}`)
    }, 240_000)

    /**
     * Every check on one run; logs the figures. `outcomes`: what the formation
     * may have done, failed over to the other node or (after a crashed
     * postmaster) restarted the primary in place.
     */
    const check = (
      run: HaRun,
      label: string,
      outcomes: ReadonlyArray<"failed over" | "restarted in place">,
    ) => {
      const report = assert_service_lived({ ...run, most_sessions: 0 }, `ha: ${label}`) as FaultReport & {
        failures_by_op: Record<string, Record<string, number>>
        calls_by_op: Record<string, number>
      }
      assert.isDefined(run.injected, "the fault was never injected")
      const { log } = run
      if (log === undefined) return assert.fail("the service printed no log of its writes")
      const { fault_at, old_primary } = run.injected
      const outcome =
        run.new_primary !== old_primary && run.promoted_at !== undefined
          ? "failed over"
          : run.new_primary === old_primary && run.started_at > fault_at
            ? "restarted in place"
            : "unchanged"
      const findings = check_ha_run(log, run.rows, fault_at, run.primary_since)
      const { problems, ...figures } = findings
      const since = run.primary_since === undefined ? "?" : Math.round(run.primary_since - fault_at)
      console.log(
        `ha: ${label}: first write after ${findings.first_write_ms ?? "none"} ms ` +
          `(${outcome}: primary :${old_primary} -> :${run.new_primary}, taking writes ${since} ms after the fault, ` +
          `last write on the old one at ${findings.last_old_write_ms ?? "none"} ms; ` +
          `longest time with no call succeeding ${Math.round(report.longest_gap_ms)} ms)`,
      )
      console.log(
        `ha: ${label}: calls ${JSON.stringify(report.calls_by_op)}, failed ${JSON.stringify(report.failures_by_op)}`,
      )
      console.log(`ha: ${label}: ${JSON.stringify(figures)}`)
      assert.deepStrictEqual(problems, [], problems.slice(0, 20).join("\n"))
      assert.include(outcomes, outcome, `the formation ${outcome === "unchanged" ? "did nothing" : outcome}`)
      assert.isDefined(findings.first_write_ms, "no create returned on the new primary")
      assert.isAtMost(findings.most_sessions, FAULT_MAX_SESSIONS)
      // the checks checked something: sessions from before the fault that had to survive it, revokes that returned
      assert.isAbove(findings.must_survive_from_before, 0)
      assert.isAbove(findings.must_survive - findings.must_survive_from_before, 0)
      assert.isAbove(findings.revokes.ok, 0)
      return findings
    }

    /** Node and pid of the primary's postmaster, the monitor's primary checked against pg_is_in_recovery(). */
    const primary_postmaster = async () => {
      const old = await find_primary(uri)
      const node: HaNode = (await ha_script_async(["primary-node"])) === "2" ? 2 : 1
      const pgdata = await ha_script_async(["node-pgdata", String(node)])
      const postmaster = read_postmaster_pid(pgdata)
      assert.strictEqual(
        postmaster?.port,
        old.port,
        `node${node} is the monitor's primary, but :${old.port} is the one not in recovery`,
      )
      const pid = postmaster?.pid ?? 0
      assert.include(
        readFileSync(`/proc/${pid}/cmdline`, "utf8"),
        pgdata,
        `pid ${pid} is not node${node}'s postmaster`,
      )
      return { node, pid, port: old.port }
    }

    /** Starts `node` again once a host other than `old_port` is the primary (at most a minute later). */
    const start_once_failed_over = async (node: HaNode, old_port: number) => {
      const give_up = Date.now() + 60_000
      while (Date.now() < give_up) {
        const primary = await find_primary(uri).catch(() => undefined)
        if (primary !== undefined && primary.port !== old_port) break
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
      await ha_script_async(["start-node", String(node)])
    }

    it("a planned failover (pg_autoctl perform failover): the process lives, every session it was given survives unless revoked or evicted, every revoke that returned holds, no account passes its limit", async () => {
      const run = await run_ha_service({
        formation,
        uri,
        seconds: SECONDS,
        fault_after_ms: FAULT_AFTER_MS,
        fault: async (): Promise<HaFault> => {
          const old = await find_primary(uri)
          // returns once the formation is healthy again
          await ha_script_async(["failover"], 300_000)
          return { kind: "planned failover", old_primary: old.port }
        },
      })
      check(run, "planned failover", ["failed over"])
    }, 240_000)

    // pg_autoctl, still running, restarts the postmaster at once: the monitor fails
    // over if it saw the primary down first (the node then rejoins as a standby, by
    // pg_rewind, on its own), otherwise the node stays primary after crash recovery
    it("a crashed primary (kill -9 of its postmaster): the same guarantees, whether the formation fails over or restarts it in place", async () => {
      let killed: HaNode | undefined
      const run = await run_ha_service({
        formation,
        uri,
        seconds: SECONDS,
        fault_after_ms: FAULT_AFTER_MS,
        fault: async (): Promise<HaFault> => {
          const primary = await primary_postmaster()
          const at = Date.now()
          process.kill(primary.pid, "SIGKILL")
          killed = primary.node
          return {
            kind: "postmaster killed",
            old_primary: primary.port,
            at,
            node: primary.node,
            pid: primary.pid,
          }
        },
        // should its pg_autoctl have gone too, it is started again
        recover: async () => {
          if (killed !== undefined) await ha_script_async(["start-node", String(killed)])
        },
      })
      check(run, "crashed primary", ["failed over", "restarted in place"])
    }, 240_000)

    // the whole node dies (pg_autoctl and PostgreSQL, kill -9): the monitor fails over
    // once the node is unhealthy. The node is started again once the other is
    // promoted, as a machine's services are when it comes back: writes wait for a
    // standby (writes_wait_for_standby), so none returns until it has rejoined
    it("a crashed primary node (kill -9 of its pg_autoctl and postmaster): the same guarantees, through a failover", async () => {
      let killed: HaNode | undefined
      let rejoined: Promise<void> | undefined
      const run = await run_ha_service({
        formation,
        uri,
        seconds: NODE_KILL_SECONDS,
        fault_after_ms: FAULT_AFTER_MS,
        fault: async (): Promise<HaFault> => {
          const primary = await primary_postmaster()
          const at = Date.now()
          await ha_script_async(["kill-node", String(primary.node)])
          killed = primary.node
          rejoined = start_once_failed_over(primary.node, primary.port)
          return { kind: "node killed", old_primary: primary.port, at, node: primary.node }
        },
        after_load: async () => {
          if (rejoined !== undefined) await rejoined
          else if (killed !== undefined) await ha_script_async(["start-node", String(killed)])
        },
      })
      check(run, "crashed primary node", ["failed over"])
    }, 240_000)
  })
}
