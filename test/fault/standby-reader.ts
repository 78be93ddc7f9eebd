/**
 * A reader of test/standby-stress.test.ts, run as test/fault/service.ts is:
 * a plain Node process with no handler for uncaught exceptions or unhandled
 * rejections. It validates the writer's sessions (test/fault/standby-writer.ts)
 * through `layer_postgres({ url, read_url })`, CONCURRENCY validations at a
 * time, and logs each one: the session, when it began and ended (the
 * machine's monotonic clock, as the writer's times), its answer, and which
 * statements it sent: the standby's (`pg_last_wal_replay_lsn` in its SQL),
 * the primary's read, or both (the standby's answer did not count). Statements
 * are told to `on_statement` in the fiber that sends them
 * (`Fiber.getCurrent()`): each is put down to the validation that fiber runs.
 *
 * It picks sessions in every state it knows of, mostly where a wrong answer
 * could hide: just created, being revoked or just revoked.
 *
 * Environment: STRESS_URL, STRESS_READ_URL, STRESS_LOG (the file its log goes
 * to), STRESS_CONCURRENCY. stdin, from the parent, one line each:
 * `c <i> <token>` (session i's create returned), `r <i>` (its revoke is being
 * sent), `R <i>` (its revoke returned), `stop`. stdout, JSON lines: `ready`
 * (once the fence is known), then its `report` as its last line.
 */
import { writeFileSync } from "node:fs"
import { Effect, Exit, Fiber, Layer, Option, Redacted, Scope } from "effect"
import { StandbyReads } from "../../src/db/standby-reads.ts"
import { auth_session, layer_postgres, layer_session_policy, SessionRepo } from "../../src/index.ts"
import {
  cause_text,
  monotonic_ms,
  PATH_OTHER,
  PATH_PRIMARY,
  PATH_STANDBY,
  RESULT_FAILED,
  RESULT_REJECTED,
  RESULT_VALID,
  type ReaderLog,
} from "../support/standby-stress.ts"

const handlers_at_start = {
  uncaught_exception: process.listenerCount("uncaughtException"),
  unhandled_rejection: process.listenerCount("unhandledRejection"),
}

const url = process.env.STRESS_URL
const read_url = process.env.STRESS_READ_URL
const log_file = process.env.STRESS_LOG
const concurrency = Number(process.env.STRESS_CONCURRENCY ?? "4")
if (url === undefined || read_url === undefined || log_file === undefined)
  throw new Error("STRESS_URL, STRESS_READ_URL and STRESS_LOG are required")

const emit = (event: Record<string, unknown>) => console.log(JSON.stringify(event))

// ---------------------------------------------------------------------------
// the sessions known, by state (what the parent relays from the writer)

const tokens: Array<Redacted.Redacted<string> | undefined> = []
/** Sessions in a state, each pickable at random and removable in O(1). */
class Bag {
  readonly items: Array<number> = []
  readonly at = new Map<number, number>()
  add(i: number) {
    this.at.set(i, this.items.length)
    this.items.push(i)
  }
  remove(i: number) {
    const index = this.at.get(i)
    if (index === undefined) return
    const last = this.items.pop() as number
    if (last !== i) {
      this.items[index] = last
      this.at.set(last, index)
    }
    this.at.delete(i)
  }
  pick(): number | undefined {
    return this.items[Math.floor(Math.random() * this.items.length)]
  }
}
const live = new Bag()
const revoking = new Bag()
/** The newest sessions created, and the newest whose revoke returned (rings). */
const fresh: Array<number> = []
const revoked: Array<number> = []
const all: Array<number> = []
const ring_push = (ring: Array<number>, i: number, size: number) => {
  ring.push(i)
  if (ring.length > size) ring.shift()
}
const pick_of = (items: ReadonlyArray<number>) => items[Math.floor(Math.random() * items.length)]

let stopped = false
let input = ""
process.stdin.setEncoding("utf8").on("data", (chunk: string) => {
  input += chunk
  const lines = input.split("\n")
  input = lines.pop() ?? ""
  for (const line of lines) {
    const [kind, index, token] = line.split(" ")
    const i = Number(index)
    if (kind === "c" && token !== undefined) {
      tokens[i] = Redacted.make(token)
      live.add(i)
      all.push(i)
      ring_push(fresh, i, 32)
    } else if (kind === "r") {
      live.remove(i)
      revoking.add(i)
    } else if (kind === "R") {
      revoking.remove(i)
      ring_push(revoked, i, 256)
    } else if (kind === "stop") {
      stopped = true
      process.stdin.destroy()
    }
  }
})

/** A session to validate: a fifth just created, a fifth live, a third being revoked or just revoked, the rest revoked or any. */
const pick = (): number | undefined => {
  const roll = Math.random()
  const chosen =
    roll < 0.2
      ? pick_of(fresh)
      : roll < 0.4
        ? live.pick()
        : roll < 0.75
          ? (revoking.pick() ?? pick_of(revoked.slice(-16)))
          : roll < 0.95
            ? pick_of(revoked)
            : pick_of(all)
  return chosen ?? live.pick() ?? pick_of(all)
}

// ---------------------------------------------------------------------------
// the validations, and the statements each sent

const log: ReaderLog = { i: [], s: [], e: [], r: [], p: [] }
const failures: Record<string, number> = {}
/** The validation each fiber runs: the statements it sends are put down to it. */
const running = new WeakMap<Fiber.Fiber<unknown, unknown>, { path: number }>()
const statements = { standby: 0, primary: 0, other: 0, unattributed: 0 }

const on_statement = (sql: string) => {
  const kind = sql.includes("pg_last_wal_replay_lsn")
    ? PATH_STANDBY
    : /^select /i.test(sql) && sql.includes('"auth_session"')
      ? PATH_PRIMARY
      : PATH_OTHER
  statements[kind === PATH_STANDBY ? "standby" : kind === PATH_PRIMARY ? "primary" : "other"]++
  const fiber = Fiber.getCurrent()
  const validation = fiber === undefined ? undefined : running.get(fiber)
  if (validation === undefined) statements.unattributed++
  else validation.path |= kind
}

const sleep = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

const load = Effect.gen(function* () {
  const repo = yield* SessionRepo
  const standby = yield* StandbyReads
  if (standby === undefined) throw new Error("the layer has no standby reads")
  // ready once a fence is known: from then on the standby answers
  const until = performance.now() + 10_000
  while (standby.fence() === undefined && performance.now() < until) yield* sleep(20)
  emit({ event: "ready", fence: standby.fence() !== undefined })

  const validate = (i: number) =>
    Effect.gen(function* () {
      const token = tokens[i] as Redacted.Redacted<string>
      const fiber = Fiber.getCurrent() as Fiber.Fiber<unknown, unknown>
      const validation = { path: 0 }
      running.set(fiber, validation)
      const s = monotonic_ms()
      const exit = yield* Effect.exit(repo.validate(token))
      const e = monotonic_ms()
      running.delete(fiber)
      log.i.push(i)
      log.s.push(s)
      log.e.push(e)
      log.p.push(validation.path)
      if (Exit.isSuccess(exit)) log.r.push(Option.isSome(exit.value) ? RESULT_VALID : RESULT_REJECTED)
      else {
        log.r.push(RESULT_FAILED)
        const text = cause_text(exit.cause)
        failures[text] = (failures[text] ?? 0) + 1
      }
    })

  const loop = Effect.gen(function* () {
    while (!stopped) {
      const i = pick()
      if (i === undefined) yield* sleep(2)
      else yield* validate(i)
    }
  })
  yield* Effect.all(
    Array.from({ length: concurrency }, () => loop),
    { concurrency: "unbounded", discard: true },
  )
  writeFileSync(log_file, JSON.stringify(log))
})

const program = Effect.gen(function* () {
  const scope = yield* Scope.make()
  const services = yield* Layer.buildWithScope(
    SessionRepo.layer(auth_session).pipe(
      Layer.provide(layer_session_policy()),
      Layer.provideMerge(
        layer_postgres({
          url: Redacted.make(url),
          read_url: Redacted.make(read_url),
          pool_size: concurrency,
          on_statement,
        }),
      ),
    ),
    scope,
  )
  yield* Effect.provide(load, services)
  const closing = performance.now()
  yield* Scope.close(scope, Exit.void)
  return {
    event: "report",
    role: "reader",
    handlers_at_start,
    validations: log.i.length,
    failures,
    statements,
    close_ms: performance.now() - closing,
  }
})

// No catch: a failure here is an unhandled rejection, which ends the process.
Effect.runPromise(program).then(emit)
