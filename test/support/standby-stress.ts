import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Cause } from "effect"
import { describe_failure } from "./failure.ts"

// The parent side of test/standby-stress.test.ts: a writer process
// (test/fault/standby-writer.ts) creating and revoking sessions, reader
// processes (test/fault/standby-reader.ts) validating them from the standby,
// the writer's events relayed to the readers, and the join of their logs.
//
// Every process stamps its events with the machine's monotonic clock
// (CLOCK_MONOTONIC, through process.hrtime): one clock for all processes of the
// machine, so a reader's time and the writer's compare exactly. A writer's
// time is taken after its call returned (or before it was sent), a reader's
// before its validation was sent (or after it returned): an event a reader
// stamps later than one of the writer's happened after it.

/** The machine's monotonic clock in ms (µs resolution), the same in every process. */
export const monotonic_ms = (): number => Number(process.hrtime.bigint() / 1000n) / 1000

/** What a failed call was, without any value it carried: `DbError:<reason>`, or the defect's first line. */
export const cause_text = (cause: Cause.Cause<unknown>): string => {
  const { text, commit_unknown } = describe_failure(cause)
  return commit_unknown ? `${text}, commit_unknown` : text
}

/** One session of the writer: created from `cs` to `ce`; its revoke first sent at `rs`, returned at `re`. */
export interface WriterSession {
  readonly i: number
  readonly cs: number
  readonly ce: number
  rs?: number
  re?: number
  /** Revokes sent until one returned (each failed one sent again). */
  tries: number
}

export interface WriterLog {
  readonly load_started: number
  readonly load_ended: number
  readonly sessions: ReadonlyArray<WriterSession>
}

/** A validation's answer. */
export const RESULT_VALID = 1
export const RESULT_REJECTED = 0
/** It failed (a DbError): no answer, and no rejection. */
export const RESULT_FAILED = 2

/** The statements a validation sent, as bits: the standby's, the primary's read, anything else. */
export const PATH_STANDBY = 1
export const PATH_PRIMARY = 2
export const PATH_OTHER = 4

/** A reader's validations, one column per field: session, start, end, result, path. */
export interface ReaderLog {
  readonly i: Array<number>
  readonly s: Array<number>
  readonly e: Array<number>
  readonly r: Array<number>
  readonly p: Array<number>
}

export interface ChildReport {
  readonly role: string
  readonly handlers_at_start: { readonly uncaught_exception: number; readonly unhandled_rejection: number }
  readonly close_ms: number
  readonly [field: string]: unknown
}

interface Child {
  readonly name: string
  readonly process: ChildProcessWithoutNullStreams
  /** Resolves on its `ready` line (rejects if it exits first). */
  readonly ready: Promise<void>
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly stderr: () => string
  readonly report: () => ChildReport | undefined
  /** It printed its report and was still running LINGER_MS later (then killed). */
  readonly lingered: () => boolean
  readonly send: (line: string) => void
}

const WRITER = fileURLToPath(new URL("../fault/standby-writer.ts", import.meta.url))
const READER = fileURLToPath(new URL("../fault/standby-reader.ts", import.meta.url))

/** `script` in a child Node process (tsx as its loader), its JSON lines given to `on_event`. */
const start_child = (
  name: string,
  script: string,
  env: Readonly<Record<string, string>>,
  on_event: (event: { readonly event: string; readonly [field: string]: unknown }) => void = () => {},
): Child => {
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  })
  let stdout = ""
  let stderr = ""
  let report: ChildReport | undefined
  let lingered = false
  let on_ready: () => void = () => {}
  let on_early_exit: (error: Error) => void = () => {}
  const ready = new Promise<void>((resolve, reject) => {
    on_ready = resolve
    on_early_exit = reject
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      on_early_exit(
        new Error(`${name} exited (${code ?? signal}) before it was ready:\n${stderr.slice(0, 2000)}`),
      )
      resolve({ code, signal })
    })
  })
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk
    const lines = stdout.split("\n")
    stdout = lines.pop() ?? ""
    for (const line of lines) {
      if (!line.startsWith("{")) continue
      const event = JSON.parse(line) as { event: string }
      if (event.event === "ready") on_ready()
      if (event.event === "report") {
        report = event as unknown as ChildReport
        // its last line: a process still running a while later is kept alive by something the layer left open
        setTimeout(() => {
          if (child.exitCode !== null || child.signalCode !== null) return
          lingered = true
          child.kill("SIGKILL")
        }, LINGER_MS).unref()
      }
      on_event(event)
    }
  })
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk
  })
  // a child that exited has a closed stdin: what is still relayed to it is dropped
  child.stdin.on("error", () => {})
  return {
    name,
    process: child,
    ready,
    exited,
    stderr: () => stderr,
    report: () => report,
    lingered: () => lingered,
    send: (line) => {
      if (child.stdin.writable) child.stdin.write(`${line}\n`)
    },
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** How long a process may take to exit after its report (its last line): its layer is closed by then. */
export const LINGER_MS = 5000

export interface StressOptions {
  /** The primary: the formation's multi-host URL (read-write). */
  readonly url: string
  /** The standbys: the multi-host URL with target_session_attrs=standby. */
  readonly read_url: string
  readonly readers: number
  readonly reader_concurrency: number
  /** The load goes on until this many sessions' revokes returned... */
  readonly min_sessions: number
  /** ...and at least this long... */
  readonly min_seconds: number
  /** ...and `during` has settled; it is stopped after `max_seconds` whatever happened. */
  readonly max_seconds: number
  /** Run once the load started (the fault); given the load's start on the monotonic clock. */
  readonly during?: (load_started: number) => Promise<unknown>
  /** How long the readers go on after the writer's last revoke returned. */
  readonly tail_ms: number
}

export interface ChildExit {
  readonly name: string
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly report: ChildReport | undefined
  /** Printed its report, then did not exit by itself within LINGER_MS (killed). */
  readonly lingered: boolean
  readonly stderr: string
}

export interface StressRun {
  readonly writer: WriterLog
  readonly readers: ReadonlyArray<ReaderLog>
  readonly exits: ReadonlyArray<ChildExit>
  /** What `during` returned. */
  readonly during: unknown
  /** When the parent said go, on the monotonic clock. */
  readonly go_at: number
}

/**
 * The writer and `readers` readers on `url` / `read_url`: the writer's
 * sessions relayed to every reader as they are created, sent to revoke and
 * revoked; `during` run alongside. Resolves once every process has exited by
 * itself, with their logs.
 */
export const run_stress = async (options: StressOptions): Promise<StressRun> => {
  const dir = mkdtempSync(join(tmpdir(), "esr-standby-stress-"))
  const env = { STRESS_URL: options.url, STRESS_READ_URL: options.read_url }
  let readers: Array<Child> = []
  let returned = 0
  let load_done: () => void = () => {}
  const writer_done = new Promise<void>((resolve) => {
    load_done = resolve
  })
  // the writer's events, to every reader: the token goes no further than their stdin
  const writer = start_child("writer", WRITER, { ...env, STRESS_LOG: join(dir, "writer.json") }, (event) => {
    const line =
      event.event === "created"
        ? `c ${event.i} ${event.token}`
        : event.event === "revoking"
          ? `r ${event.i}`
          : event.event === "revoked"
            ? `R ${event.i}`
            : undefined
    if (event.event === "revoked") returned++
    if (event.event === "load_done") load_done()
    if (line !== undefined) for (const reader of readers) reader.send(line)
  })
  const children = () => [writer, ...readers]
  try {
    await writer.ready
    readers = Array.from({ length: options.readers }, (_, n) =>
      start_child(`reader ${n}`, READER, {
        ...env,
        STRESS_LOG: join(dir, `reader-${n}.json`),
        STRESS_CONCURRENCY: String(options.reader_concurrency),
      }),
    )
    await Promise.all(readers.map((reader) => reader.ready))
    const go_at = monotonic_ms()
    writer.send("go")
    let during_settled = options.during === undefined
    const during = options.during?.(go_at).finally(() => {
      during_settled = true
    })
    // the stop condition, checked every 100 ms
    for (;;) {
      const elapsed = monotonic_ms() - go_at
      if (elapsed > options.max_seconds * 1000) break
      if (during_settled && returned >= options.min_sessions && elapsed >= options.min_seconds * 1000) break
      await sleep(100)
    }
    writer.send("stop")
    await Promise.race([writer_done, writer.exited])
    // the readers go on validating what was just revoked
    await sleep(options.tail_ms)
    for (const reader of readers) reader.send("stop")
    const exits = await Promise.all(
      children().map(async (child) => {
        const { code, signal } = await child.exited
        return {
          name: child.name,
          code,
          signal,
          report: child.report(),
          lingered: child.lingered(),
          stderr: child.stderr(),
        }
      }),
    )
    const during_value = await during
    const read_log = <A>(file: string): A | undefined => {
      try {
        return JSON.parse(readFileSync(join(dir, file), "utf8")) as A
      } catch {
        return undefined
      }
    }
    return {
      writer: read_log<WriterLog>("writer.json") ?? { load_started: go_at, load_ended: go_at, sessions: [] },
      readers: readers.map(
        (_, n) => read_log<ReaderLog>(`reader-${n}.json`) ?? { i: [], s: [], e: [], r: [], p: [] },
      ),
      exits,
      during: during_value,
      go_at,
    }
  } finally {
    // a child still running here is one the test gave up on
    for (const child of children()) if (child.process.exitCode === null) child.process.kill("SIGKILL")
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The p-th percentile (0 to 100) of `values`, nearest rank. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}

/** What the join found: `violations` must be empty; the rest is for the log and for the checks that something was checked. */
export interface StressFindings {
  readonly violations: ReadonlyArray<string>
  readonly sessions: { readonly created: number; readonly revoked: number; readonly not_revoked: number }
  readonly validations: {
    readonly total: number
    readonly valid: number
    readonly rejected: number
    readonly failed: number
    readonly per_second: number
    readonly seconds: number
  }
  /** Valid answers the standby gave (its statement sent, no read on the primary after it). */
  readonly standby_answered: number
  /** Validations that sent the standby's statement and then read the primary (its answer did not count). */
  readonly standby_then_primary: number
  /** Of those, the ones the primary found valid: the standby was behind (its fence not reached, or the create not applied). */
  readonly standby_behind: number
  /** Validations that read the primary only (no fence recent enough). */
  readonly primary_only: number
  /** Validations that sent something else as well (a touch): none expected. */
  readonly other_statements: number
  /** Validations begun after their session's revoke returned (each must not be valid), and of those begun within 100 ms of it. */
  readonly after_revoke: number
  readonly after_revoke_100ms: number
  /** Validations run wholly between their session's create returning and its revoke being sent (each must not be rejected), and of those the standby answered. */
  readonly while_live: number
  readonly while_live_standby: number
  /** Validations that overlapped their session's revoke (either answer is right), valid and not. */
  readonly during_revoke: { readonly valid: number; readonly rejected: number }
  /** Create latency (send to return), ms. */
  readonly create_ms: { readonly p50: number; readonly p99: number }
  /** Revoke latency (send to return) of the revokes that returned at the first try, ms. */
  readonly revoke_ms: {
    readonly p50: number
    readonly p99: number
    readonly max: number
    readonly at_least_1s: number
  }
}

const ms = (value: number) => `${value.toFixed(3)} ms`

/**
 * Joins the readers' validations with the writer's sessions. A violation is a
 * validation that
 * - began after its session's revoke returned, and answered valid; or
 * - began after its session's create returned and ended before its revoke was
 *   first sent (or never was), and answered not valid.
 * A failed validation (a DbError) answered nothing, and is neither.
 */
export const check_stress = (run: StressRun): StressFindings => {
  const { writer, readers, go_at } = run
  const at = (time: number) => `${ms(time - go_at)} into the load`
  const violations: Array<string> = []
  let total = 0
  let valid = 0
  let rejected = 0
  let failed = 0
  let standby_answered = 0
  let standby_then_primary = 0
  let standby_behind = 0
  let primary_only = 0
  let other_statements = 0
  let after_revoke = 0
  let after_revoke_100ms = 0
  let while_live = 0
  let while_live_standby = 0
  const during_revoke = { valid: 0, rejected: 0 }
  let first = Number.POSITIVE_INFINITY
  let last = Number.NEGATIVE_INFINITY
  const path_text = (path: number) =>
    path === PATH_STANDBY
      ? "the standby answered"
      : (path & PATH_STANDBY) !== 0
        ? "the standby was asked, then the primary"
        : (path & PATH_PRIMARY) !== 0
          ? "the primary answered (no fence)"
          : `statements ${path}`
  readers.forEach((log, reader) => {
    for (let k = 0; k < log.i.length; k++) {
      const i = log.i[k] as number
      const s = log.s[k] as number
      const e = log.e[k] as number
      const r = log.r[k] as number
      const p = log.p[k] as number
      const session = writer.sessions[i]
      total++
      first = Math.min(first, s)
      last = Math.max(last, e)
      if (r === RESULT_FAILED) {
        failed++
        continue
      }
      if (r === RESULT_VALID) valid++
      else rejected++
      if (p === PATH_STANDBY && r === RESULT_VALID) standby_answered++
      else if ((p & PATH_STANDBY) !== 0) {
        standby_then_primary++
        if (r === RESULT_VALID) standby_behind++
      } else primary_only++
      if ((p & PATH_OTHER) !== 0) other_statements++
      const describe = () =>
        `session #${i} (created ${at(session?.cs ?? 0)}..${at(session?.ce ?? 0)}, revoke sent ${
          session?.rs === undefined ? "never" : at(session.rs)
        }, returned ${session?.re === undefined ? "never" : at(session.re)}${
          session !== undefined && session.tries > 1 ? ` at try ${session.tries}` : ""
        }), validated by reader ${reader} from ${at(s)} to ${at(e)}: ${path_text(p)}`
      if (session === undefined) {
        violations.push(`reader ${reader} validated session #${i}, which the writer never created`)
        continue
      }
      if (s <= session.ce) {
        // the reader learns of a session once its create returned: the clocks disagree
        violations.push(`validated before its create returned: ${describe()}`)
        continue
      }
      if (session.re !== undefined && s > session.re) {
        after_revoke++
        if (s - session.re <= 100) after_revoke_100ms++
        if (r === RESULT_VALID)
          violations.push(`valid ${ms(s - session.re)} after the revoke returned: ${describe()}`)
      } else if (session.rs === undefined || e < session.rs) {
        while_live++
        if (p === PATH_STANDBY) while_live_standby++
        if (r === RESULT_REJECTED)
          violations.push(`rejected ${ms(s - session.ce)} after the create returned: ${describe()}`)
      } else if (session.rs !== undefined && e >= session.rs) {
        if (r === RESULT_VALID) during_revoke.valid++
        else during_revoke.rejected++
      }
    }
  })
  const latencies = writer.sessions.flatMap((session) =>
    session.rs !== undefined && session.re !== undefined && session.tries === 1
      ? [session.re - session.rs]
      : [],
  )
  const seconds = Number.isFinite(first) ? (last - first) / 1000 : 0
  return {
    violations,
    sessions: {
      created: writer.sessions.length,
      revoked: writer.sessions.filter((session) => session.re !== undefined).length,
      not_revoked: writer.sessions.filter((session) => session.re === undefined).length,
    },
    validations: {
      total,
      valid,
      rejected,
      failed,
      seconds,
      per_second: seconds > 0 ? total / seconds : 0,
    },
    standby_answered,
    standby_then_primary,
    standby_behind,
    primary_only,
    other_statements,
    after_revoke,
    after_revoke_100ms,
    while_live,
    while_live_standby,
    during_revoke,
    create_ms: {
      p50: percentile(
        writer.sessions.map((session) => session.ce - session.cs),
        50,
      ),
      p99: percentile(
        writer.sessions.map((session) => session.ce - session.cs),
        99,
      ),
    },
    revoke_ms: {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: Math.max(0, ...latencies),
      at_least_1s: latencies.filter((latency) => latency >= 1000).length,
    },
  }
}
