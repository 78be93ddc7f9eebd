/**
 * The writer of test/standby-stress.test.ts, run as test/fault/service.ts is:
 * a plain Node process with no handler for uncaught exceptions or unhandled
 * rejections, so either one ends it. It creates sessions and revokes them
 * through `layer_postgres({ url, read_url })` (standby reads: a revoke returns
 * once every standby applied it, or after FENCE_MAX_AGE_MS), while the
 * readers (test/fault/standby-reader.ts) validate them from the standby.
 *
 * LOOPS loops, each on an account of its own: a loop creates a session, and
 * revokes its oldest once that one has lived LIFETIME_MS (or the loop holds
 * LIVE_CAP, below max_sessions: the limit never evicts, so a session ends only
 * by its revoke). A revoke that fails is sent again until one returns.
 *
 * Times are the machine's monotonic clock (`process.hrtime`, CLOCK_MONOTONIC:
 * the same clock in every process of the machine), in ms: the readers' times
 * compare with these exactly. Taken after a call returned, before it was sent.
 *
 * Environment: STRESS_URL (the primary, the formation's multi-host URL),
 * STRESS_READ_URL (the standbys), STRESS_LOG (the file its log goes to).
 * stdin: `go` starts the load, `stop` ends it (the sessions still live are
 * revoked, then the process closes its layer and exits).
 * stdout, JSON lines: `ready`, then for each session `created` (with its
 * token, for the parent to hand to the readers), `revoking` (before the
 * revoke is sent), `revoked` (once one returned), then `load_done` and its
 * `report` as its last line.
 */
import { writeFileSync } from "node:fs"
import { type Cause, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { StandbyReads } from "../../src/db/standby-reads.ts"
import {
  account,
  auth_session,
  Db,
  layer_postgres,
  layer_session_policy,
  migrate,
  SessionRepo,
} from "../../src/index.ts"
import { cause_text, monotonic_ms, type WriterLog, type WriterSession } from "../support/standby-stress.ts"

const LOOPS = 16
/** How long a session lives before its loop revokes it. */
const LIFETIME_MS = 300
/** Sessions a loop holds at most: below MAX_SESSIONS, so the limit never evicts one. */
const LIVE_CAP = 24
const MAX_SESSIONS = 32
/** A revoke that keeps failing is given up after this long (the session is then reported as not revoked). */
const REVOKE_GIVE_UP_MS = 60_000

const handlers_at_start = {
  uncaught_exception: process.listenerCount("uncaughtException"),
  unhandled_rejection: process.listenerCount("unhandledRejection"),
}

const url = process.env.STRESS_URL
const read_url = process.env.STRESS_READ_URL
const log_file = process.env.STRESS_LOG
if (url === undefined || read_url === undefined || log_file === undefined)
  throw new Error("STRESS_URL, STRESS_READ_URL and STRESS_LOG are required")

const emit = (event: Record<string, unknown>) => console.log(JSON.stringify(event))

let go: () => void = () => {}
const started = new Promise<void>((resolve) => {
  go = resolve
})
let stopping = false
let input = ""
process.stdin.setEncoding("utf8").on("data", (chunk: string) => {
  input += chunk
  const lines = input.split("\n")
  input = lines.pop() ?? ""
  for (const line of lines) {
    if (line === "go") go()
    if (line === "stop") {
      stopping = true
      // nothing more to read: stdin must not keep the process alive
      process.stdin.destroy()
    }
  }
})

const tally = {
  creates: { ok: 0, failed: {} as Record<string, number> },
  revokes: { ok: 0, failed: {} as Record<string, number>, given_up: 0 },
}

const count = (into: Record<string, number>, cause: Cause.Cause<unknown>) => {
  const text = cause_text(cause)
  into[text] = (into[text] ?? 0) + 1
}

const sleep = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

const load = Effect.gen(function* () {
  yield* migrate
  const repo = yield* SessionRepo
  if ((yield* StandbyReads) === undefined) throw new Error("the layer has no standby reads")
  const suffix = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`
  const accounts = yield* Db.use((db) =>
    Effect.promise(() =>
      db
        .insert(account)
        .values(Array.from({ length: LOOPS }, (_, l) => ({ username: `standby-stress-${l}-${suffix}` })))
        .returning({ id: account.id }),
    ),
  )
  const sessions: Array<WriterSession> = []
  emit({ event: "ready" })
  yield* Effect.promise(() => started)
  const load_started = monotonic_ms()

  const revoke = (session: WriterSession, token: Redacted.Redacted<string>) =>
    Effect.gen(function* () {
      emit({ event: "revoking", i: session.i })
      session.rs = monotonic_ms()
      for (;;) {
        session.tries++
        const exit = yield* Effect.exit(repo.revoke(token))
        const now = monotonic_ms()
        if (Exit.isSuccess(exit)) {
          session.re = now
          tally.revokes.ok++
          emit({ event: "revoked", i: session.i })
          return
        }
        count(tally.revokes.failed, exit.cause)
        if (now - session.rs > REVOKE_GIVE_UP_MS) {
          tally.revokes.given_up++
          return
        }
        yield* sleep(100)
      }
    })

  const loop = (l: number) =>
    Effect.gen(function* () {
      const account_id = accounts[l]?.id as string
      const live: Array<{ readonly session: WriterSession; readonly token: Redacted.Redacted<string> }> = []
      while (!stopping) {
        const oldest = live[0]
        if (
          oldest !== undefined &&
          (live.length >= LIVE_CAP || monotonic_ms() - oldest.session.ce >= LIFETIME_MS)
        ) {
          live.shift()
          yield* revoke(oldest.session, oldest.token)
          continue
        }
        const cs = monotonic_ms()
        const exit = yield* Effect.exit(repo.create_session(account_id, { max_sessions: MAX_SESSIONS }))
        const ce = monotonic_ms()
        if (Exit.isFailure(exit)) {
          count(tally.creates.failed, exit.cause)
          yield* sleep(20)
          continue
        }
        tally.creates.ok++
        const session: WriterSession = { i: sessions.length, cs, ce, tries: 0 }
        sessions.push(session)
        live.push({ session, token: exit.value.token })
        emit({ event: "created", i: session.i, token: Redacted.value(exit.value.token) })
      }
      // every session this loop created ends by its revoke
      for (const { session, token } of live) yield* revoke(session, token)
    })

  yield* Effect.all(
    Array.from({ length: LOOPS }, (_, l) => loop(l)),
    { concurrency: "unbounded", discard: true },
  )
  const load_ended = monotonic_ms()
  const log: WriterLog = { load_started, load_ended, sessions }
  writeFileSync(log_file, JSON.stringify(log))
  emit({ event: "load_done" })
})

const program = Effect.gen(function* () {
  const scope = yield* Scope.make()
  const services = yield* Layer.buildWithScope(
    SessionRepo.layer(auth_session).pipe(
      Layer.provide(layer_session_policy()),
      Layer.provideMerge(
        layer_postgres({ url: Redacted.make(url), read_url: Redacted.make(read_url), pool_size: LOOPS }),
      ),
    ),
    scope,
  )
  yield* Effect.provide(load, services)
  const closing = performance.now()
  yield* Scope.close(scope, Exit.void)
  return {
    event: "report",
    role: "writer",
    handlers_at_start,
    ...tally,
    close_ms: performance.now() - closing,
  }
})

// No catch: a failure here is an unhandled rejection, which ends the process.
Effect.runPromise(program).then(emit)
