import { execFile, execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

// The highly available PostgreSQL formation of .ci/ha-formation.sh (a
// pg_auto_failover monitor and two PostgreSQL 15 nodes in synchronous
// replication on 127.0.0.1), for the failover tests. CI starts it and sets
// HA_URL; a test skips when HA_URL is absent, unless REQUIRE_HA=1.
//
// Every helper but `ha_script_async` runs the script synchronously: the event
// loop stands still meanwhile. A test that keeps queries going during a
// failover runs the failover with `ha_script_async("failover")`.

const SCRIPT = fileURLToPath(new URL("../../.ci/ha-formation.sh", import.meta.url))

/** Whether the HA tests must run: `REQUIRE_HA=1` (set by CI) makes a missing formation a failure. */
export const ha_required = (): boolean => process.env.REQUIRE_HA === "1"

/** Whether the HA tests run here: a formation is up (`HA_URL`) or required. */
export const ha_available = (): boolean => process.env.HA_URL !== undefined || ha_required()

const failure = (args: ReadonlyArray<string>, error: unknown): Error => {
  const stderr = (error as { stderr?: string | Buffer }).stderr?.toString() ?? ""
  const tail = stderr.trimEnd().split("\n").slice(-40).join("\n")
  return new Error(`bash .ci/ha-formation.sh ${args.join(" ")} failed:\n${tail}`, { cause: error })
}

/** Runs the script with `args`; its stdout, trimmed. Throws with its stderr's tail when it fails. */
export const ha_script = (args: ReadonlyArray<string>, timeout_ms = 180_000): string => {
  try {
    return execFileSync("bash", [SCRIPT, ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeout_ms,
    }).trim()
  } catch (error) {
    throw failure(args, error)
  }
}

/** `ha_script` without blocking the event loop. */
export const ha_script_async = (args: ReadonlyArray<string>, timeout_ms = 180_000): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile("bash", [SCRIPT, ...args], { encoding: "utf8", timeout: timeout_ms }, (error, stdout) => {
      if (error === null) resolve(stdout.trim())
      else reject(failure(args, error))
    })
  })

export type HaNode = 1 | 2

export interface HaFormation {
  /**
   * The nodes' multi-host URI as pg_autoctl gives it, with user postgres added:
   * `postgres://postgres@127.0.0.1:6001,127.0.0.1:6002/postgres?target_session_attrs=read-write&sslmode=disable`
   * (node-postgres reads one host only: see src/db/multi-host.ts).
   */
  readonly uri: string
  /** The monitor's URI: `postgres://autoctl_node@127.0.0.1:6000/pg_auto_failover`. */
  readonly monitor_uri: string
  /** Node n's data directory: `head -1 <it>/postmaster.pid` is its postmaster's pid. */
  readonly node_pgdata: (n: HaNode) => string
  /** The node the monitor has as primary now. */
  readonly primary_node: () => HaNode
  /** A planned failover (pg_autoctl perform failover), returning once healthy again (about 3 to 5 s). */
  readonly failover: () => void
  /** Waits until one node is primary and the other secondary; throws after `seconds` (default 120). */
  readonly wait_healthy: (seconds?: number) => void
  /** The nodes' states, for a failure message. */
  readonly status: () => string
  /** Stops node n's pg_autoctl and its PostgreSQL (`immediate`: PostgreSQL's immediate mode). */
  readonly stop_node: (n: HaNode, immediate?: boolean) => void
  /** Starts node n's pg_autoctl again; it rejoins by itself (wait_healthy to wait for it). */
  readonly start_node: (n: HaNode) => void
  /** kill -9 of node n's pg_autoctl and PostgreSQL, as when its machine dies. */
  readonly kill_node: (n: HaNode) => void
}

/** The formation, started if it is not up and healthy (from scratch: about 6 to 12 s). */
export const ha_formation = (): HaFormation => {
  const uri = ha_script(["up"])
  const monitor_uri = ha_script(["monitor-uri"])
  return {
    uri,
    monitor_uri,
    node_pgdata: (n) => ha_script(["node-pgdata", String(n)]),
    primary_node: () => (ha_script(["primary-node"]) === "2" ? 2 : 1),
    failover: () => {
      ha_script(["failover"], 300_000)
    },
    wait_healthy: (seconds = 120) => {
      ha_script(["wait-healthy", String(seconds)], (seconds + 60) * 1000)
    },
    status: () => ha_script(["status"]),
    stop_node: (n, immediate = false) => {
      ha_script(immediate ? ["stop-node", String(n), "--immediate"] : ["stop-node", String(n)])
    },
    start_node: (n) => {
      ha_script(["start-node", String(n)])
    },
    kill_node: (n) => {
      ha_script(["kill-node", String(n)])
    },
  }
}
