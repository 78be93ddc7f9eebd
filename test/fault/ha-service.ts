/**
 * A service through a failover of its PostgreSQL formation (test/ha-failover.test.ts),
 * run as test/fault/service.ts is: a plain Node process with no handler for
 * uncaught exceptions or unhandled rejections, so either one ends it. Its
 * database is reached through the formation's multi-host URL
 * (target_session_attrs=read-write) while the parent test fails the primary
 * over or kills it.
 *
 * Its load mixes creates (over a few "hot" accounts held to max_sessions, and
 * over "fresh" accounts that get one session each, which the limit never
 * evicts), validations (of sessions it holds, and of sessions it revoked) and
 * revokes. It keeps what each write returned, and when: after the load it
 * validates every session it holds again, prints the log of its writes
 * (`ha_log`, session ids only, never a token) for the parent to check
 * against the new primary's rows, closes its layer and prints its report
 * (test/support/fault-service.ts's FaultReport, and more) as its last line.
 *
 * Environment: FAULT_DATABASE_URL (the multi-host URL of an empty database of
 * its own), FAULT_SECONDS (load duration).
 */
import { performance } from "node:perf_hooks"
import { Effect, Exit, Layer, Option, Redacted, Scope } from "effect"
import {
  account,
  auth_session,
  Db,
  layer_postgres,
  layer_session_policy,
  migrate,
  SessionRepo,
} from "../../src/index.ts"
import { describe_failure } from "../support/failure.ts"
import { FAULT_MAX_SESSIONS } from "../support/fault-service.ts"
import {
  HA_FRESH_ACCOUNTS,
  HA_HOT_ACCOUNTS,
  type HaCreate,
  type HaLog,
  type HaRevoke,
} from "../support/ha-service.ts"

const LOOPS = 8

const handlers_at_start = {
  uncaught_exception: process.listenerCount("uncaughtException"),
  unhandled_rejection: process.listenerCount("unhandledRejection"),
}

const url = process.env.FAULT_DATABASE_URL
const seconds = Number(process.env.FAULT_SECONDS ?? "12")
if (url === undefined) throw new Error("FAULT_DATABASE_URL is required")

const emit = (event: Record<string, unknown>) => console.log(JSON.stringify(event))

type Op = "create" | "validate" | "revoke"

const tally = {
  calls: 0,
  ok: 0,
  retryable: 0,
  commit_unknown: 0,
  unexpected: [] as Array<string>,
  failures: {} as Record<string, number>,
  /** Failures by operation, then by `DbError:<reason>` (`, commit_unknown` when so). */
  failures_by_op: { create: {}, validate: {}, revoke: {} } as Record<Op, Record<string, number>>,
  calls_by_op: { create: 0, validate: 0, revoke: 0 } as Record<Op, number>,
  slowest_ms: 0,
  fastest_failure_ms: null as number | null,
  /** The longest time with no call succeeding anywhere: the outage as callers saw it. */
  longest_gap_ms: 0,
}

let last_ok_at: number | undefined

/** Counts one call; returns how it failed, if it did. */
const record = (op: Op, exit: Exit.Exit<unknown, unknown>, elapsed_ms: number) => {
  tally.calls++
  tally.calls_by_op[op]++
  tally.slowest_ms = Math.max(tally.slowest_ms, elapsed_ms)
  if (Exit.isSuccess(exit)) {
    tally.ok++
    const now = performance.now()
    if (last_ok_at !== undefined) tally.longest_gap_ms = Math.max(tally.longest_gap_ms, now - last_ok_at)
    last_ok_at = now
    return undefined
  }
  tally.fastest_failure_ms = Math.min(tally.fastest_failure_ms ?? elapsed_ms, elapsed_ms)
  const failure = describe_failure(exit.cause)
  tally.failures[failure.text] = (tally.failures[failure.text] ?? 0) + 1
  const key = failure.commit_unknown ? `${failure.text}, commit_unknown` : failure.text
  tally.failures_by_op[op][key] = (tally.failures_by_op[op][key] ?? 0) + 1
  if (failure.commit_unknown) tally.commit_unknown++
  if (failure.retryable) tally.retryable++
  else if (tally.unexpected.length < 20) tally.unexpected.push(`${op}: ${failure.text}`)
  return failure
}

const pick = <A>(items: ReadonlyArray<A>): A | undefined => items[Math.floor(Math.random() * items.length)]

const load = Effect.gen(function* () {
  yield* migrate
  const repo = yield* SessionRepo
  const suffix = Math.random().toString(36).slice(2)
  // hot accounts first (indexes 0 to HOT - 1), then the fresh ones
  const accounts = yield* Db.use((db) =>
    Effect.promise(() =>
      db
        .insert(account)
        .values(
          Array.from({ length: HA_HOT_ACCOUNTS + HA_FRESH_ACCOUNTS }, (_, i) => ({
            username: `ha-${i < HA_HOT_ACCOUNTS ? "hot" : "fresh"}-${i}-${suffix}`,
          })),
        )
        .returning({ id: account.id }),
    ),
  )
  const account_ids = accounts.map((row) => row.id)

  const creates: Array<HaCreate> = []
  const revokes: Array<HaRevoke> = []
  const tokens = new Map<string, Redacted.Redacted<string>>()
  /** Sessions created and not (yet) sent to revoke: what validations and revokes pick from. */
  const held: Array<string> = []
  /** Sessions whose revoke returned, with when it returned. */
  const revoked: Array<{ readonly id: string; readonly at: number }> = []
  /** Validations begun after a revoke of that session had returned, that found it valid. */
  const revoked_but_valid: Array<{
    readonly id: string
    readonly revoked_at: number
    readonly began: number
  }> = []
  let next_fresh = HA_HOT_ACCOUNTS
  let hot_turn = 0

  const create = Effect.gen(function* () {
    // a fresh account for every other create, while there are some left
    const fresh = next_fresh < account_ids.length && creates.length % 2 === 0
    const index = fresh ? next_fresh++ : hot_turn++ % HA_HOT_ACCOUNTS
    const entry: { -readonly [K in keyof HaCreate]: HaCreate[K] } = {
      account: index,
      s: Date.now(),
      e: 0,
      r: "failed",
    }
    creates.push(entry)
    const began = performance.now()
    const exit = yield* Effect.exit(
      repo.create_session(account_ids[index] as string, { max_sessions: FAULT_MAX_SESSIONS }),
    )
    entry.e = Date.now()
    const failure = record("create", exit, performance.now() - began)
    if (Exit.isSuccess(exit)) {
      entry.r = "ok"
      entry.id = exit.value.session.id
      tokens.set(exit.value.session.id, exit.value.token)
      held.push(exit.value.session.id)
    } else if (failure?.commit_unknown === true) entry.r = "unknown"
    else entry.failure = failure?.text
  })

  const validate_held = Effect.gen(function* () {
    const id = pick(held)
    if (id === undefined) return
    const began = performance.now()
    // evicted sessions are not found: either answer is a success here
    const exit = yield* Effect.exit(repo.validate(tokens.get(id) as Redacted.Redacted<string>))
    record("validate", exit, performance.now() - began)
  })

  const validate_revoked = Effect.gen(function* () {
    const target = pick(revoked)
    if (target === undefined) return yield* validate_held
    const began_at = Date.now()
    const began = performance.now()
    const exit = yield* Effect.exit(repo.validate(tokens.get(target.id) as Redacted.Redacted<string>))
    record("validate", exit, performance.now() - began)
    if (Exit.isSuccess(exit) && Option.isSome(exit.value) && began_at >= target.at)
      revoked_but_valid.push({ id: target.id.slice(0, 12), revoked_at: target.at, began: began_at })
  })

  const revoke = Effect.gen(function* () {
    if (held.length === 0) return
    const id = held.splice(Math.floor(Math.random() * held.length), 1)[0] as string
    const entry: { -readonly [K in keyof HaRevoke]: HaRevoke[K] } = { id, s: Date.now(), e: 0, r: "failed" }
    revokes.push(entry)
    const began = performance.now()
    const exit = yield* Effect.exit(repo.revoke(tokens.get(id) as Redacted.Redacted<string>))
    entry.e = Date.now()
    const failure = record("revoke", exit, performance.now() - began)
    if (Exit.isSuccess(exit)) {
      entry.r = "ok"
      revoked.push({ id, at: entry.e })
    } else entry.failure = failure?.text
  })

  // 2 creates, 2 validations and 1 revoke in every 5 calls
  const mix = [create, validate_held, create, revoke, validate_revoked]

  emit({ event: "ready", at: Date.now() })
  last_ok_at = performance.now()
  const deadline = performance.now() + seconds * 1000
  let turn = 0
  const loop = Effect.gen(function* () {
    while (performance.now() < deadline) yield* mix[turn++ % mix.length] as Effect.Effect<void>
  })
  yield* Effect.all(
    Array.from({ length: LOOPS }, () => loop),
    { concurrency: "unbounded" },
  )
  emit({ event: "load_done", at: Date.now() })

  // After the load, every session held is validated again (retried while the
  // formation is still between primaries): the revoked ones must be gone, the
  // others found unless the limit evicted them.
  const validate_after = (id: string) =>
    Effect.gen(function* () {
      const until = performance.now() + 60_000
      for (;;) {
        const exit = yield* Effect.exit(repo.validate(tokens.get(id) as Redacted.Redacted<string>))
        if (Exit.isSuccess(exit)) return Option.isSome(exit.value) ? "valid" : "none"
        if (performance.now() > until) return "failed"
        yield* Effect.sleep("200 millis")
      }
    })
  const ids = [...tokens.keys()]
  const began = performance.now()
  const first = yield* Effect.exit(repo.validate(tokens.get(ids[0] ?? "") ?? Redacted.make("")))
  const read_after_ms = performance.now() - began
  const answers = yield* Effect.forEach(
    ids,
    (id) => Effect.map(validate_after(id), (answer) => [id, answer] as const),
    { concurrency: LOOPS },
  )
  const log: HaLog = {
    accounts: account_ids,
    creates,
    revokes,
    valid_after: answers.filter(([, answer]) => answer === "valid").map(([id]) => id),
    none_after: answers.filter(([, answer]) => answer === "none").map(([id]) => id),
    failed_after: answers.filter(([, answer]) => answer === "failed").map(([id]) => id),
    revoked_but_valid,
  }
  emit({ event: "ha_log", ...log })
  return { read_after_ms, read_after_ok: Exit.isSuccess(first) }
})

const program = Effect.gen(function* () {
  const scope = yield* Scope.make()
  const services = yield* Layer.buildWithScope(
    SessionRepo.layer(auth_session).pipe(
      Layer.provide(layer_session_policy()),
      // as the README advises on pg_auto_failover: a write returns once a standby has it
      Layer.provideMerge(
        layer_postgres({ url: Redacted.make(url), pool_size: LOOPS, writes_wait_for_standby: true }),
      ),
    ),
    scope,
  )
  const after = yield* Effect.provide(load, services)
  const closing = performance.now()
  yield* Scope.close(scope, Exit.void)
  return {
    event: "report",
    scenario: "ha",
    handlers_at_start,
    ...tally,
    ...after,
    close_ms: performance.now() - closing,
  }
})

// No catch: a failure here is an unhandled rejection, which ends the process.
Effect.runPromise(program).then(emit)
