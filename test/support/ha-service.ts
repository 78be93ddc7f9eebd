import { readdirSync, readFileSync, statSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { parse_postgres_url } from "../../src/db/multi-host.ts"
import { admin_client } from "./admin.ts"
import { FAULT_MAX_SESSIONS, type FaultRun, run_service_process, type ServiceEvent } from "./fault-service.ts"
import { type HaFormation, ha_script_async } from "./ha-formation.ts"

// The parent side of test/fault/ha-service.ts: a database of its own on the
// formation, the service in a child process through the formation's
// multi-host URL, a fault in the middle of its load, and the checks of what
// it was told against the rows of the primary after the fault.

/** Accounts the service's creates share, held to FAULT_MAX_SESSIONS: the limit evicts there. */
export const HA_HOT_ACCOUNTS = 4
/** Accounts that get one create each (every other create, while they last): never evicted. */
export const HA_FRESH_ACCOUNTS = 3000

/** One create_session call of the service; times are Date.now() at its start (s) and end (e). */
export interface HaCreate {
  /** The account's index in HaLog.accounts. */
  readonly account: number
  /** The session's id (its token's hash) when the call returned one. */
  readonly id?: string
  readonly s: number
  readonly e: number
  /** Returned a session; failed with commit_unknown (it may exist); failed otherwise (rolled back). */
  readonly r: "ok" | "unknown" | "failed"
  readonly failure?: string | undefined
}

/** One revoke call of the service on a session it had created. */
export interface HaRevoke {
  readonly id: string
  readonly s: number
  readonly e: number
  readonly r: "ok" | "failed"
  readonly failure?: string | undefined
}

/** The service's `ha_log` event: its writes, and its validations after the load. */
export interface HaLog {
  readonly accounts: ReadonlyArray<string>
  readonly creates: ReadonlyArray<HaCreate>
  readonly revokes: ReadonlyArray<HaRevoke>
  /** Sessions it created, validated after the load: found valid, not found, or no answer in 60 s. */
  readonly valid_after: ReadonlyArray<string>
  readonly none_after: ReadonlyArray<string>
  readonly failed_after: ReadonlyArray<string>
  /** Validations begun after a revoke of the session had returned, that found it valid (id prefixes). */
  readonly revoked_but_valid: ReadonlyArray<{
    readonly id: string
    readonly revoked_at: number
    readonly began: number
  }>
}

/** A row of the session table on the primary after the fault. */
export interface HaRow {
  readonly id: string
  readonly account_id: string
}

/**
 * `uri` without `sslmode=prefer`, which pg_autoctl's URIs end with: node-postgres
 * takes any sslmode but disable as "TLS required", which the formation's
 * servers (no TLS) refuse.
 */
export const without_sslmode_prefer = (uri: string): string =>
  uri.replace(/([?&])sslmode=prefer(&|$)/, (_, before: string, after: string) => (after === "" ? "" : before))

/** `uri` (one host or several) on `database`. */
const on_database = (uri: string, database: string): string => {
  const at = uri.search(/[?#]/)
  const [base, rest] = at < 0 ? [uri, ""] : [uri.slice(0, at), uri.slice(at)]
  const authority_end = base.indexOf("/", base.indexOf("//") + 2)
  return `${authority_end < 0 ? base : base.slice(0, authority_end)}/${database}${rest}`
}

/** `uri`'s user and password with one host, and no query: an admin connection to that node. */
const node_url = (uri: string, host: string, port: number, database = "postgres"): string => {
  const authority = /^postgres(?:ql)?:\/\/([^/?#]*)/.exec(uri)?.[1] ?? ""
  const at = authority.lastIndexOf("@")
  const user = at < 0 ? "" : authority.slice(0, at + 1)
  return `postgres://${user}${host.includes(":") ? `[${host}]` : host}:${port}/${database}`
}

export interface HaPrimary {
  readonly host: string
  readonly port: number
  /** An admin URL of the primary's `postgres` database. */
  readonly url: string
}

/**
 * The one host of `uri` that accepts a connection and is not in recovery;
 * throws when there is none, or more than one (a split brain).
 */
export const find_primary = async (uri: string): Promise<HaPrimary> => {
  const parsed = await Effect.runPromise(parse_postgres_url(uri))
  const primaries: Array<HaPrimary> = []
  const seen: Array<string> = []
  for (const { host, port } of parsed.hosts) {
    const url = node_url(uri, host, port)
    try {
      const client = await admin_client(url)
      try {
        const { rows } = await client.query<{ standby: boolean }>("SELECT pg_is_in_recovery() AS standby")
        seen.push(`${host}:${port} ${rows[0]?.standby ? "standby" : "primary"}`)
        if (rows[0]?.standby === false) primaries.push({ host, port, url })
      } finally {
        await client.end()
      }
    } catch (error) {
      seen.push(`${host}:${port} ${(error as Error).message}`)
    }
  }
  if (primaries.length !== 1)
    throw new Error(`not one primary among the formation's hosts: ${seen.join("; ")}`)
  return primaries[0] as HaPrimary
}

/** The pid and port in the postmaster.pid of the data directory `pgdata` (undefined when it has none). */
export const read_postmaster_pid = (
  pgdata: string,
): { readonly pid: number; readonly port: number } | undefined => {
  try {
    const [pid, , , port] = readFileSync(`${pgdata}/postmaster.pid`, "utf8").split("\n")
    return { pid: Number(pid), port: Number(port) }
  } catch {
    return undefined
  }
}

/**
 * When the node on `port` was last promoted: the time its newest timeline
 * history file was written (`pg_wal/*.history`, written at promotion), if
 * after `since`; undefined when it was not promoted since then.
 */
export const promoted_at = (formation: HaFormation, port: number, since: number): number | undefined => {
  for (const n of [1, 2] as const) {
    const pgdata = formation.node_pgdata(n)
    if (read_postmaster_pid(pgdata)?.port !== port) continue
    const times = readdirSync(`${pgdata}/pg_wal`)
      .filter((name) => name.endsWith(".history"))
      .map((name) => statSync(`${pgdata}/pg_wal/${name}`).mtimeMs)
    const newest = Math.max(...times)
    return newest > since ? newest : undefined
  }
  return undefined
}

/** What the fault did, as the test's fault function tells it. */
export interface HaFault {
  readonly kind: string
  /** The primary's port before the fault. */
  readonly old_primary: number
  /** When the fault struck (Date.now()), if not when it was asked for: a kill after finding the primary. */
  readonly at?: number
  readonly [detail: string]: unknown
}

/** What `run_ha_service` gives back: the run, the fault, the log, and the primary's rows after. */
export interface HaRun extends Omit<FaultRun<HaFault & { readonly fault_at: number }>, "most_sessions"> {
  readonly log: HaLog | undefined
  readonly rows: ReadonlyArray<HaRow>
  /** The primary after the fault, once the formation was healthy again. */
  readonly new_primary: number
  /** When the new primary was promoted (undefined: none was since the fault). */
  readonly promoted_at: number | undefined
  /** When the new primary's postmaster started. */
  readonly started_at: number
  /**
   * When the new primary took writes, if after the fault: its promotion, or
   * its start when it was not promoted (the old primary restarted in place).
   */
  readonly primary_since: number | undefined
}

const SERVICE = fileURLToPath(new URL("../fault/ha-service.ts", import.meta.url))

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The service on a new database of the formation for `seconds`, `fault` run
 * `fault_after_ms` into its load; once the load is done, waits until the
 * formation is healthy again (`recover`, when given, is run if it is not in
 * `wait_seconds`, then waited for again), reads the session table on the
 * primary, and drops the database.
 */
export const run_ha_service = async (options: {
  readonly formation: HaFormation
  /** The multi-host URI the service connects through (sslmode=prefer already removed). */
  readonly uri: string
  readonly seconds: number
  readonly fault_after_ms: number
  readonly fault: () => Promise<HaFault>
  /** Run once the load is done, before waiting for the formation to be healthy (to start a node again). */
  readonly after_load?: () => Promise<void>
  /** Run when the formation is not healthy in `wait_seconds`, before waiting again. */
  readonly recover?: () => Promise<void>
  readonly wait_seconds?: number
}): Promise<HaRun> => {
  const database = `esr_ha_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
  const before = await find_primary(options.uri)
  const creator = await admin_client(before.url)
  await creator.query(`CREATE DATABASE ${database}`).finally(() => creator.end())
  let log: HaLog | undefined
  const wait_healthy = async () => {
    const seconds = options.wait_seconds ?? 90
    try {
      await ha_script_async(["wait-healthy", String(seconds)], (seconds + 30) * 1000)
    } catch (error) {
      if (options.recover === undefined) throw error
      await options.recover()
      await ha_script_async(["wait-healthy", String(seconds)], (seconds + 30) * 1000)
    }
  }
  try {
    const run = await run_service_process({
      script: SERVICE,
      env: { FAULT_DATABASE_URL: on_database(options.uri, database), FAULT_SECONDS: String(options.seconds) },
      inject: async (load_done) => {
        await sleep(options.fault_after_ms)
        const asked_at = Date.now()
        const fault = await options.fault()
        await load_done
        await options.after_load?.()
        await wait_healthy()
        return { ...fault, fault_at: fault.at ?? asked_at }
      },
      on_event: (event: ServiceEvent) => {
        if (event.event === "ha_log") log = event as unknown as HaLog
      },
    })
    // a service that died before its fault: the formation was never touched
    if (run.injected === undefined) await wait_healthy()
    const after = await find_primary(options.uri)
    const check = await admin_client(node_url(options.uri, after.host, after.port, database))
    try {
      const { rows } = await check.query<HaRow>("SELECT id, account_id::text AS account_id FROM auth_session")
      const started = await check.query<{ at: number }>(
        "SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000)::float8 AS at",
      )
      const started_at = started.rows[0]?.at ?? 0
      const fault_at = run.injected?.fault_at ?? Number.POSITIVE_INFINITY
      const promoted = promoted_at(options.formation, after.port, fault_at)
      return {
        ...run,
        log,
        rows,
        new_primary: after.port,
        promoted_at: promoted,
        started_at,
        primary_since: promoted ?? (started_at > fault_at ? started_at : undefined),
      }
    } finally {
      await check.end()
    }
  } finally {
    // best effort: a formation left broken has already failed the test, with its own message
    try {
      const primary = await find_primary(options.uri)
      const dropper = await admin_client(primary.url)
      await dropper.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).finally(() => dropper.end())
    } catch (error) {
      console.warn(`ha: database ${database} not dropped: ${(error as Error).message}`)
    }
  }
}

/** What the checks found: `problems` must be empty; the rest is for the log. */
export interface HaFindings {
  readonly problems: ReadonlyArray<string>
  readonly creates: { readonly ok: number; readonly commit_unknown: number; readonly failed: number }
  readonly revokes: { readonly ok: number; readonly failed: number }
  /** Sessions that had to be on the new primary (no revoke tried, too few creates after them to evict them). */
  readonly must_survive: number
  /** Of those, the ones whose create returned before the fault. */
  readonly must_survive_from_before: number
  /** Sessions the limit may have evicted, and did (not on the new primary). */
  readonly evicted: number
  /** Rows of sessions whose create failed with commit_unknown: they committed after all. */
  readonly unknown_committed: number
  /** The most sessions any account holds. */
  readonly most_sessions: number
  /** From the fault to the end of the first create to return on the new primary (once it took writes). */
  readonly first_write_ms: number | undefined
  /** From the fault to the end of the last create to return before the new primary took writes (negative: before the fault). */
  readonly last_old_write_ms: number | undefined
}

/**
 * Checks what the service was told against the rows of the primary after the
 * fault:
 * - every session a create returned is there, unless a revoke of it was sent,
 *   or the limit may have evicted it: a create evicts a session only when
 *   `max_sessions` sessions of its account rank above it, itself included,
 *   each committed after the session's create began, so the account has at
 *   least `max_sessions` other creates that may have committed (returned, or
 *   failed with commit_unknown) and ended after it began;
 * - every session whose revoke returned is gone, and no validation begun after
 *   that revoke returned found it;
 * - a create that failed without commit_unknown left no row: every row the
 *   service was not told of is one of its account's commit_unknown creates;
 * - no account holds more than `max_sessions`;
 * - the service's validations after the load agree with the rows.
 */
export const check_ha_run = (
  log: HaLog,
  rows: ReadonlyArray<HaRow>,
  fault_at: number,
  primary_since: number | undefined,
  max_sessions = FAULT_MAX_SESSIONS,
): HaFindings => {
  const problems: Array<string> = []
  const short = (id: string) => id.slice(0, 12)
  const at = (time: number) => `${time - fault_at} ms`
  const index_of = new Map(log.accounts.map((id, index) => [id, index]))
  const present = new Set(rows.map((row) => row.id))
  const revoke_of = new Map(log.revokes.map((revoke) => [revoke.id, revoke]))
  const by_account = new Map<number, Array<HaCreate>>()
  for (const create of log.creates) {
    const list = by_account.get(create.account) ?? []
    list.push(create)
    by_account.set(create.account, list)
  }

  let must_survive = 0
  let must_survive_from_before = 0
  let evicted = 0
  for (const create of log.creates) {
    if (create.r !== "ok" || create.id === undefined || revoke_of.has(create.id)) continue
    const later = (by_account.get(create.account) ?? []).filter(
      (other) => other !== create && other.r !== "failed" && other.e >= create.s,
    )
    const evictable = later.length >= max_sessions
    if (!evictable) {
      must_survive++
      if (create.e < fault_at) must_survive_from_before++
    }
    if (present.has(create.id)) continue
    if (evictable) evicted++
    else
      problems.push(
        `lost: session ${short(create.id)} of account ${create.account}, created from ${at(create.s)} to ${at(create.e)} ` +
          `after the fault, is not on the new primary; no revoke of it was sent, and only ${later.length} other ` +
          `creates of its account that may have committed ended after it began (${later
            .map((other) => `${other.r} ${at(other.s)}..${at(other.e)}`)
            .join(", ")}), fewer than max_sessions ${max_sessions}`,
      )
  }

  const revoked_ok = log.revokes.filter((revoke) => revoke.r === "ok")
  const valid_after = new Set(log.valid_after)
  for (const revoke of revoked_ok) {
    if (present.has(revoke.id))
      problems.push(
        `revoke undone: session ${short(revoke.id)}, revoked from ${at(revoke.s)} to ${at(revoke.e)} after the fault, is on the new primary`,
      )
    if (valid_after.has(revoke.id))
      problems.push(
        `revoke undone: session ${short(revoke.id)} validated after the load although its revoke returned`,
      )
  }
  for (const seen of log.revoked_but_valid)
    problems.push(
      `revoke undone: session ${seen.id} validated at ${at(seen.began)} after the fault, its revoke had returned at ${at(seen.revoked_at)}`,
    )

  // rows the service was not told of: its commit_unknown creates, account by account
  const known = new Set(log.creates.flatMap((create) => (create.id === undefined ? [] : [create.id])))
  const unknown_rows = new Map<number, number>()
  const per_account = new Map<string, number>()
  for (const row of rows) {
    per_account.set(row.account_id, (per_account.get(row.account_id) ?? 0) + 1)
    if (known.has(row.id)) continue
    const index = index_of.get(row.account_id) ?? -1
    unknown_rows.set(index, (unknown_rows.get(index) ?? 0) + 1)
  }
  let unknown_committed = 0
  for (const [index, count] of unknown_rows) {
    const unknown = (by_account.get(index) ?? []).filter((create) => create.r === "unknown").length
    unknown_committed += Math.min(count, unknown)
    if (count > unknown)
      problems.push(
        `account ${index} has ${count} sessions the service was never given, but only ${unknown} of its creates failed with commit_unknown: ` +
          "a create reported as failed (not commit_unknown) committed",
      )
  }

  const most_sessions = Math.max(0, ...per_account.values())
  for (const [account_id, count] of per_account)
    if (count > max_sessions)
      problems.push(
        `account ${index_of.get(account_id)} holds ${count} sessions, above its limit ${max_sessions}`,
      )

  // the service's own validations after the load, against the rows
  for (const id of log.valid_after)
    if (!present.has(id))
      problems.push(`session ${short(id)} validated after the load but is not on the new primary`)
  for (const id of log.none_after)
    if (present.has(id))
      problems.push(`session ${short(id)} not found by a validation after the load but is on the new primary`)
  if (log.failed_after.length > 0)
    problems.push(`${log.failed_after.length} validations after the load failed for 60 s`)

  // creates that returned after the new primary took writes were its; before, the old
  // primary's (a backend of a killed postmaster may still finish its transaction)
  const since = Math.max(fault_at, primary_since ?? Number.POSITIVE_INFINITY)
  const ends = log.creates.filter((create) => create.r === "ok").map((create) => create.e)
  const first_write = Math.min(...ends.filter((end) => end > since))
  const last_old_write = Math.max(...ends.filter((end) => end <= since))
  const count = <A>(items: ReadonlyArray<A>, keep: (item: A) => boolean) => items.filter(keep).length
  return {
    problems,
    creates: {
      ok: count(log.creates, (create) => create.r === "ok"),
      commit_unknown: count(log.creates, (create) => create.r === "unknown"),
      failed: count(log.creates, (create) => create.r === "failed"),
    },
    revokes: { ok: revoked_ok.length, failed: count(log.revokes, (revoke) => revoke.r === "failed") },
    must_survive,
    must_survive_from_before,
    evicted,
    unknown_committed,
    most_sessions,
    first_write_ms: Number.isFinite(first_write) ? first_write - fault_at : undefined,
    last_old_write_ms: Number.isFinite(last_old_write) ? last_old_write - fault_at : undefined,
  }
}
