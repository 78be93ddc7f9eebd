import { Effect, Layer, Redacted } from "effect"
import { assert, beforeAll, describe, it } from "vitest"
import { layer_postgres, migrate } from "../src/index.ts"
import { admin_client } from "./support/admin.ts"
import {
  type HaFormation,
  type HaNode,
  ha_available,
  ha_formation,
  ha_required,
  ha_script,
  ha_script_async,
} from "./support/ha-formation.ts"
import { find_primary, read_postmaster_pid, without_sslmode_prefer } from "./support/ha-service.ts"
import {
  check_stress,
  LINGER_MS,
  monotonic_ms,
  run_stress,
  type StressFindings,
  type StressOptions,
  type StressRun,
} from "./support/standby-stress.ts"

// Standby reads under load (issue 20): four processes validate sessions from
// the standby (test/fault/standby-reader.ts, through layer_postgres's
// read_url) while a fifth creates and revokes them (test/fault/standby-writer.ts)
// on a pg_auto_failover formation (.ci/ha-formation.sh). Every process
// stamps what it does with the machine's monotonic clock; afterwards the
// readers' validations are joined with the writer's sessions: none may
// answer valid if it began after its session's revoke returned, none may
// answer not valid if it ran wholly between its session's create returning
// and its revoke being sent (test/support/standby-stress.ts). Three runs:
// steady; the standby stopped and started again (the primary drops to
// asynchronous replication, pg_auto_failover's wait_primary, and back); the
// standby taken out of the quorum (asynchronous) and its replay paused 3 s,
// twice, so that it answers seconds behind (only there does a standby fall
// behind by more than the revoke's wait: the run that fails when the fence
// is not checked). Every process must exit by itself, with status 0.
//
// The figures go to the log as `standby-stress: <run>: ...` lines: sessions,
// validations and validations/s, how many the standby answered (counted in
// the readers: a validation that sent the standby's statement and nothing
// after it, and answered valid; and, as the standby counts them, its own
// scans of auth_session, read once the readers closed), revoke latency
// p50/p99 (the wait for the standbys), failures by DbError reason.
//
// Runs with REQUIRE_HA=1 or HA_URL (the formation is brought up through
// ha_formation() if it is not, in HA_DIR on HA_PORT_BASE); skipped otherwise,
// and reported so. It stops and starts the formation's standby and changes
// its quorum setting (restored after): run it alone, not beside
// test/ha-failover.test.ts on the same formation:
// `REQUIRE_HA=1 npx vitest run test/standby-stress.test.ts` (about two minutes).

const READERS = 4
const READER_CONCURRENCY = 2
const MIN_SESSIONS = 1000
/** The lagging-standby run is about its pauses: fewer sessions will do. */
const ASYNC_MIN_SESSIONS = 300
/** The readers go on this long after the last revoke returned. */
const TAIL_MS = 1500

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** `uri` asking for standbys instead of the primary. */
const standby_uri = (uri: string): string =>
  /[?&]target_session_attrs=/.test(uri)
    ? uri.replace(/([?&]target_session_attrs=)[^&]*/, "$1standby")
    : `${uri}${uri.includes("?") ? "&" : "?"}target_session_attrs=standby`

/** `uri`'s user on one host, database postgres: an admin connection to that node. */
const node_url = (uri: string, port: number): string => {
  const authority = /^postgres(?:ql)?:\/\/([^/?#]*)/.exec(uri)?.[1] ?? ""
  const at = authority.lastIndexOf("@")
  return `postgres://${at < 0 ? "" : authority.slice(0, at + 1)}127.0.0.1:${port}/postgres`
}

/**
 * Scans of auth_session (sequential or by index: one per execution of the
 * standby's statement, whichever plan it gets) on the node at `url`, as its
 * statistics have them, once no connection of the package is left on it.
 */
const index_scans = async (url: string): Promise<number | undefined> => {
  const client = await admin_client(url)
  try {
    // a backend flushes its statistics when it exits (at the latest): wait for the readers' to be gone
    for (let tries = 0; tries < 50; tries++) {
      const { rows } = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'effect-session-repo'",
      )
      if (rows[0]?.n === 0) break
      await sleep(100)
    }
    const { rows } = await client.query<{ scans: string | null }>(
      "SELECT (seq_scan + coalesce(idx_scan, 0))::text AS scans FROM pg_stat_user_tables WHERE relname = 'auth_session'",
    )
    return rows[0]?.scans == null ? undefined : Number(rows[0].scans)
  } finally {
    await client.end()
  }
}

/** synchronous_standby_names on the primary every 100 ms, and when it changed. */
const watch_sync = (primary_url: string, go_at: number) => {
  const changes: Array<{ readonly at_ms: number; readonly names: string; readonly streaming: number }> = []
  let running = true
  let current: { names: string; streaming: number } | undefined
  const done = (async () => {
    const client = await admin_client(primary_url)
    try {
      while (running) {
        try {
          const { rows } = await client.query<{ names: string; streaming: number }>(
            `SELECT current_setting('synchronous_standby_names') AS names,
               (SELECT count(*)::int FROM pg_stat_replication WHERE state = 'streaming') AS streaming`,
          )
          const row = rows[0]
          if (row !== undefined && (row.names !== current?.names || row.streaming !== current?.streaming)) {
            changes.push({ at_ms: Math.round(monotonic_ms() - go_at), ...row })
          }
          current = row
        } catch {
          // the primary stays up: a failed poll is tried again
        }
        await sleep(100)
      }
    } finally {
      await client.end()
    }
  })()
  return {
    changes,
    now: () => current,
    stop: async () => {
      running = false
      await done
    },
  }
}

const until = async (condition: () => boolean, ms: number): Promise<boolean> => {
  const deadline = performance.now() + ms
  while (!condition()) {
    if (performance.now() > deadline) return false
    await sleep(100)
  }
  return true
}

if (!ha_available()) {
  console.warn(
    "[standby-stress] SKIPPED: no HA formation (REQUIRE_HA=1 starts one with .ci/ha-formation.sh, as root; HA_URL names one that runs)",
  )
  describe.skip("standby reads under load", () => {
    it("needs REQUIRE_HA=1 or HA_URL", () => {})
  })
} else {
  describe("standby reads under load", () => {
    let formation: HaFormation
    let uri = ""
    let read_uri = ""
    beforeAll(async () => {
      formation = ha_formation()
      uri = without_sslmode_prefer(process.env.HA_URL ?? formation.uri)
      read_uri = standby_uri(uri)
      // a run cut short may have left a node out of the quorum: both nodes in it
      for (const node of [1, 2] as const) {
        const args = ["autoctl", "get", "node", "replication-quorum", "--pgdata", formation.node_pgdata(node)]
        if (ha_script(args).split("\n").at(-1)?.trim() === "false")
          ha_script(["autoctl", "set", ...args.slice(2, 4), "true", ...args.slice(4)])
      }
      console.log(
        `standby-stress: formation ${uri}, reads on ${read_uri}${ha_required() ? " (REQUIRE_HA=1)" : ""}`,
      )
      // the formation's postgres database, migrated (idempotent); each run makes accounts of its own
      await Effect.runPromise(
        Effect.provide(migrate, Layer.orDie(layer_postgres({ url: Redacted.make(uri), pool_size: 1 }))),
      )
    }, 240_000)

    /** The standby's port and node (the formation's node that is not primary). */
    const standby_node = () => {
      const primary = formation.primary_node()
      const node: HaNode = primary === 1 ? 2 : 1
      const port = read_postmaster_pid(formation.node_pgdata(node))?.port
      if (port === undefined) throw new Error(`node${node} has no postmaster.pid`)
      return { node, port }
    }

    /** One run, its figures logged, its checks made; returns the findings. */
    const stress = async (
      label: string,
      options: Pick<StressOptions, "min_seconds" | "max_seconds" | "during"> & {
        readonly min_sessions?: number
      },
    ): Promise<{ run: StressRun; findings: StressFindings }> => {
      const standby = standby_node()
      const scans_before = await index_scans(node_url(uri, standby.port))
      const run = await run_stress({
        url: uri,
        read_url: read_uri,
        readers: READERS,
        reader_concurrency: READER_CONCURRENCY,
        tail_ms: TAIL_MS,
        ...options,
        min_sessions: options.min_sessions ?? MIN_SESSIONS,
      })
      const scans_after = await index_scans(node_url(uri, standby.port)).catch(() => undefined)
      const findings = check_stress(run)
      const reports = run.exits.map((exit) => exit.report)
      const writer = reports[0] as
        | {
            creates: { ok: number; failed: Record<string, number> }
            revokes: { ok: number; failed: Record<string, number> }
          }
        | undefined
      const readers = reports.slice(1) as Array<
        | {
            failures: Record<string, number>
            statements: { standby: number; primary: number; other: number; unattributed: number }
          }
        | undefined
      >
      const sum = (pick: (r: NonNullable<(typeof readers)[number]>) => number) =>
        readers.reduce((total, r) => total + (r === undefined ? 0 : pick(r)), 0)
      const validation_failures: Record<string, number> = {}
      for (const r of readers)
        for (const [reason, n] of Object.entries(r?.failures ?? {}))
          validation_failures[reason] = (validation_failures[reason] ?? 0) + n
      const standby_sent = sum((r) => r.statements.standby)
      const executed =
        scans_before === undefined || scans_after === undefined || scans_after < scans_before
          ? `not known (before ${scans_before}, after ${scans_after}: its statistics were reset)`
          : `${scans_after - scans_before}`
      const { validations: v, revoke_ms: revoke } = findings
      const pct = (n: number, of: number) => `${of === 0 ? 0 : ((100 * n) / of).toFixed(1)}%`
      console.log(
        `standby-stress: ${label}: sessions created ${findings.sessions.created}, revoked ${findings.sessions.revoked} ` +
          `(create failures ${JSON.stringify(writer?.creates.failed ?? {})}, revoke failures ${JSON.stringify(writer?.revokes.failed ?? {})})`,
      )
      console.log(
        `standby-stress: ${label}: validations ${v.total} by ${READERS} readers in ${v.seconds.toFixed(1)} s ` +
          `(${Math.round(v.per_second)}/s): valid ${v.valid}, not valid ${v.rejected}, failed ${v.failed} ${JSON.stringify(validation_failures)}`,
      )
      console.log(
        `standby-stress: ${label}: the standby answered ${findings.standby_answered} (${pct(findings.standby_answered, v.total)} of all, ` +
          `${pct(findings.standby_answered, v.valid)} of the valid answers); asked the standby then the primary ${findings.standby_then_primary} ` +
          `(${findings.standby_behind} of them valid: the standby was behind), ` +
          `the primary only ${findings.primary_only}; standby statements sent ${standby_sent}, ` +
          `executed on the standby ${executed} (its pg_stat_user_tables: scans of auth_session)`,
      )
      console.log(
        `standby-stress: ${label}: revoke latency p50 ${revoke.p50.toFixed(1)} ms, p99 ${revoke.p99.toFixed(1)} ms, ` +
          `max ${revoke.max.toFixed(1)} ms, ${revoke.at_least_1s} took 1 s or more (create p50 ${findings.create_ms.p50.toFixed(1)} ms, p99 ${findings.create_ms.p99.toFixed(1)} ms)`,
      )
      console.log(
        `standby-stress: ${label}: checked ${findings.after_revoke} validations begun after their revoke returned ` +
          `(${findings.after_revoke_100ms} within 100 ms of it), ${findings.while_live} of live sessions ` +
          `(${findings.while_live_standby} answered by the standby), ${findings.during_revoke.valid + findings.during_revoke.rejected} ` +
          `overlapping their revoke (valid ${findings.during_revoke.valid}, not valid ${findings.during_revoke.rejected}); ` +
          `violations ${findings.violations.length}`,
      )

      for (const violation of findings.violations.slice(0, 5))
        console.log(`standby-stress: ${label}: VIOLATION ${violation}`)
      assert.deepStrictEqual(findings.violations.slice(0, 20), [], `${findings.violations.length} violations`)
      assert.strictEqual(findings.violations.length, 0)
      for (const exit of run.exits) {
        assert.isDefined(
          exit.report,
          `${exit.name} printed no report: exit ${exit.code ?? exit.signal}\n${exit.stderr.slice(0, 3000)}`,
        )
        assert.deepStrictEqual(exit.report?.handlers_at_start, {
          uncaught_exception: 0,
          unhandled_rejection: 0,
        })
      }
      const lingered = run.exits.filter((exit) => exit.lingered).map((exit) => exit.name)
      assert.deepStrictEqual(
        lingered,
        [],
        `printed their report (their layer closed) but did not exit by themselves in ${LINGER_MS} ms: something the layer started outlived its close`,
      )
      for (const exit of run.exits)
        assert.strictEqual(
          exit.code,
          0,
          `${exit.name} exited ${exit.code ?? exit.signal}\n${exit.stderr.slice(0, 3000)}`,
        )
      // the check checked something: every session created was revoked, validations of each state
      assert.isAtLeast(findings.sessions.revoked, options.min_sessions ?? MIN_SESSIONS)
      assert.strictEqual(findings.sessions.not_revoked, 0, "sessions whose revoke never returned")
      assert.isAbove(findings.after_revoke, options.min_sessions ?? MIN_SESSIONS)
      assert.isAbove(findings.after_revoke_100ms, 0)
      assert.isAbove(findings.while_live_standby, options.min_sessions ?? MIN_SESSIONS)
      // every statement was put down to the validation that sent it: the standby's count is exact
      assert.strictEqual(
        sum((r) => r.statements.unattributed),
        0,
        "statements sent outside a validation",
      )
      return { run, findings }
    }

    it("steady: four processes validate from the standby while a fifth creates and revokes 1,000 sessions; no session valid after its revoke returned, none rejected after its create returned", async () => {
      const { findings } = await stress("steady", { min_seconds: 8, max_seconds: 60 })
      assert.strictEqual(findings.validations.failed, 0, "validations failed with nothing failing")
      // most of the valid answers came from the standby
      assert.isAbove(findings.standby_answered, findings.validations.valid / 2)
    }, 180_000)

    it("the standby stopped and started again (the primary drops to asynchronous replication and back): the same", async () => {
      const standby = standby_node()
      const primary = await find_primary(uri)
      let timeline: Record<string, unknown> = {}
      let sync: ReturnType<typeof watch_sync> | undefined
      const { run } = await stress("standby stopped and started", {
        min_seconds: 10,
        max_seconds: 120,
        during: async (go_at) => {
          sync = watch_sync(primary.url, go_at)
          const since = () => Math.round(monotonic_ms() - go_at)
          await sleep(3000)
          const stop_at = since()
          await ha_script_async(["stop-node", String(standby.node)])
          const stopped_at = since()
          // the monitor moves the primary to wait_primary: no synchronous standby
          const went_async = await until(() => sync?.now()?.names === "", 20_000)
          const async_at = since()
          await sleep(1500)
          const start_at = since()
          await ha_script_async(["start-node", String(standby.node)])
          await ha_script_async(["wait-healthy", "120"], 180_000)
          const healthy_at = since()
          const back_sync = await until(
            () => (sync?.now()?.names ?? "") !== "" && (sync?.now()?.streaming ?? 0) > 0,
            30_000,
          )
          const sync_at = since()
          // steady again for a while
          await sleep(3000)
          timeline = {
            node: standby.node,
            stop_at,
            stopped_at,
            went_async,
            async_at,
            start_at,
            healthy_at,
            back_sync,
            sync_at,
          }
          // logged before the run's checks, which may fail
          console.log(
            `standby-stress: standby stopped and started: node${standby.node}, ms into the load: ${JSON.stringify(timeline)}; ` +
              `the primary's synchronous_standby_names and streaming standbys: ${JSON.stringify(sync.changes)}`,
          )
          return timeline
        },
      }).finally(() => sync?.stop())
      assert.isDefined(run.during, "the standby was never stopped")
      assert.isTrue(timeline.went_async, "the primary never dropped to asynchronous replication")
      assert.isTrue(timeline.back_sync, "the primary never came back to synchronous replication")
    }, 240_000)

    // Above, the standby is synchronous whenever it answers (or a moment after
    // it came back): the revoke's wait covers it, and it is never more than
    // milliseconds behind. Here it falls seconds behind while asynchronous (the
    // monitor takes it out of the quorum, then its replay is paused): its
    // answers must stop counting once its replay is behind the fence.
    it("an asynchronous standby seconds behind (out of the quorum, its replay paused 3 s, twice): the same", async () => {
      const standby = standby_node()
      const pgdata = formation.node_pgdata(standby.node)
      const primary = await find_primary(uri)
      const quorum = (on: boolean) =>
        ha_script_async(["autoctl", "set", "node", "replication-quorum", String(on), "--pgdata", pgdata])
      let timeline: Record<string, unknown> = {}
      let sync: ReturnType<typeof watch_sync> | undefined
      await stress("asynchronous standby behind", {
        min_sessions: ASYNC_MIN_SESSIONS,
        min_seconds: 10,
        max_seconds: 120,
        during: async (go_at) => {
          sync = watch_sync(primary.url, go_at)
          const since = () => Math.round(monotonic_ms() - go_at)
          const paused: Array<[number, number]> = []
          const admin = await admin_client(node_url(uri, standby.port))
          let went_async = false
          let async_at = 0
          try {
            await sleep(2000)
            await quorum(false)
            // the monitor takes it out of synchronous_standby_names
            went_async = await until(() => sync?.now()?.names === "", 20_000)
            async_at = since()
            await sleep(1000)
            for (let round = 0; round < 2; round++) {
              const from = since()
              await admin.query("SELECT pg_wal_replay_pause()")
              await sleep(3000)
              await admin.query("SELECT pg_wal_replay_resume()")
              paused.push([from, since()])
              await sleep(1000)
            }
          } finally {
            await admin.query("SELECT pg_wal_replay_resume()").catch(() => {})
            await admin.end()
            await quorum(true)
          }
          const back_sync = await until(
            () => (sync?.now()?.names ?? "") !== "" && (sync?.now()?.streaming ?? 0) > 0,
            30_000,
          )
          const sync_at = since()
          await sleep(2000)
          timeline = { node: standby.node, went_async, async_at, paused, back_sync, sync_at }
          console.log(
            `standby-stress: asynchronous standby behind: node${standby.node}, ms into the load: ${JSON.stringify(timeline)}; ` +
              `the primary's synchronous_standby_names and streaming standbys: ${JSON.stringify(sync.changes)}`,
          )
          return timeline
        },
      }).finally(() => sync?.stop())
      assert.isTrue(timeline.went_async, "the standby never left the quorum")
      assert.isTrue(timeline.back_sync, "the standby never came back to the quorum")
    }, 240_000)
  })
}
