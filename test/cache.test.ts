import { readFileSync } from "node:fs"
import { assert, describe, it, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Effect, Exit, Fiber, Layer, ManagedRuntime, Metric, Option, Redacted } from "effect"
import { TestClock } from "effect/testing"
import {
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  auth_session,
  Database,
  type Db,
  DEFAULT_SESSION_POLICY,
  layer_postgres,
  migrate,
  type Notifications,
  SessionCache,
  SessionPolicy,
  SessionRepo,
  SessionTouches,
  session_change_trigger_sql,
} from "../src/index.ts"
import { session_cache_lookups } from "../src/observability/metrics.ts"
import { make_session_cache } from "../src/session/cache.ts"
import { hash_session_token, session_prefix } from "../src/token.ts"
import { admin_client } from "./support/admin.ts"
import {
  type Backend,
  backends,
  postgres_backend,
  report_skipped_postgres,
  server_url,
} from "./support/backends.ts"
import {
  count_matching,
  create_account,
  hold_in_transaction,
  on_db,
  statements_of,
} from "./support/fixtures.ts"

const SESSION_READ = /^select .* from "auth_session" where "auth_session"."id" = \$1$/

/** The repo with its validation cache, on a migrated database of `backend`. */
const cached_repo = (database: Layer.Layer<Database | Db | Notifications, unknown>) =>
  SessionRepo.layer_cached(auth_session, { cache: { max_age_ms: 60_000 } }).pipe(
    Layer.provideMerge(Layer.succeed(SessionPolicy, DEFAULT_SESSION_POLICY)),
    Layer.provideMerge(Layer.effectDiscard(migrate).pipe(Layer.provideMerge(database))),
    Layer.orDie,
  )

/** How many session reads `effect` sent. */
const reads_of = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(statements_of(effect), ({ result, statements }) => ({
    result,
    reads: count_matching(statements, SESSION_READ),
  }))

/** `ms` of real time: the TestClock does not move by itself. */
const real_sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/** Waits, in real time, until `done` holds (at most 15 s: the listener retries at most every 5 s). */
const wait_until = (done: () => boolean) =>
  Effect.gen(function* () {
    const started = performance.now()
    while (!done()) {
      if (performance.now() - started > 15_000) return assert.fail("waited 15 s in vain")
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
  })

/** `statement` on the server's maintenance database (one database cannot change whether it lets connections in). */
const as_admin = (statement: string) =>
  Effect.promise(async () => {
    const admin = await admin_client(server_url as string)
    try {
      await admin.query(statement)
    } finally {
      await admin.end()
    }
  })

/** The name of the database `Db` is on. */
const current_database = Effect.map(
  on_db((db) => db.execute(sql`SELECT current_database() AS name`)),
  (result) => String((result as unknown as { rows: Array<{ name: string }> }).rows[0]?.name),
)

/** Waits, in real time, until `token` no longer validates; the milliseconds it took. */
const until_rejected = (token: Redacted.Redacted<string>) =>
  Effect.gen(function* () {
    const repo = yield* SessionRepo
    const started = performance.now()
    while (Option.isSome(yield* repo.validate(token))) {
      if (performance.now() - started > 5_000)
        return assert.fail("still valid 5 s after its change committed")
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
    }
    return performance.now() - started
  })

describe("the cache's rule: a reading overtaken by an invalidation is not kept", () => {
  const session = { id: hash_session_token("x") } as never
  const id = hash_session_token("x")
  const listening = () => {
    const cache = make_session_cache({ max_age_ms: 1000 })
    cache.on_listening(true)
    return cache
  }
  it("kept when nothing overtook it, and served until its maximum age", () => {
    const cache = listening()
    cache.keep(id, session, cache.begin_read(), 0)
    assert.strictEqual(cache.lookup(id, 999), session)
    assert.isUndefined(cache.lookup(id, 1000))
  })
  it("not kept when its session was invalidated during the read", () => {
    const cache = listening()
    const begun = cache.begin_read()
    cache.on_notification(`00000000,${session_prefix(id)}`)
    cache.keep(id, session, begun, 0)
    assert.isUndefined(cache.lookup(id, 0))
  })
  it("kept when only other sessions were invalidated during the read", () => {
    const cache = listening()
    const begun = cache.begin_read()
    cache.on_notification("00000000,11111111")
    cache.keep(id, session, begun, 0)
    assert.strictEqual(cache.lookup(id, 0), session)
  })
  it("not kept when more invalidations came during the read than the cache remembers", () => {
    const cache = listening()
    const begun = cache.begin_read()
    for (let i = 0; i < 5000; i++) cache.on_notification(i.toString(16).padStart(8, "0"))
    cache.keep(id, session, begun, 0)
    assert.isUndefined(cache.lookup(id, 0))
  })
  it("not kept across a flush (TRUNCATE, or the listener lost and back), nor while nobody listens", () => {
    const cache = listening()
    const begun = cache.begin_read()
    cache.on_notification("*")
    cache.keep(id, session, begun, 0)
    assert.isUndefined(cache.lookup(id, 0))
    cache.keep(id, session, cache.begin_read(), 0)
    cache.on_listening(false)
    assert.isUndefined(cache.lookup(id, 0))
    cache.keep(id, session, cache.begin_read(), 0)
    cache.on_listening(true)
    assert.isUndefined(cache.lookup(id, 0))
  })
  it("the standalone migration installs exactly the trigger session_change_trigger_sql makes", () => {
    const shipped = readFileSync(
      new URL("../drizzle/0005_session_change_notify.sql", import.meta.url),
      "utf8",
    )
    assert.include(shipped, session_change_trigger_sql(auth_session))
  })
})

const suite = (backend: Backend) =>
  layer(cached_repo(backend.database()))(`the validation cache on ${backend.name}`, (it) => {
    it.effect("a second validation is served from memory, judged by the Clock", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const { token } = yield* repo.create_session((yield* create_account()).id)
        assert.strictEqual((yield* reads_of(repo.validate(token))).reads, 1)
        const hit = yield* reads_of(repo.validate(token))
        assert.isTrue(Option.isSome(hit.result))
        assert.strictEqual(hit.reads, 0)
        // the lookups counter tells the two apart
        const lookups = yield* Effect.all([
          Metric.value(session_cache_lookups("hit")),
          Metric.value(session_cache_lookups("miss")),
        ])
        assert.deepStrictEqual(
          lookups.map((state) => state.count),
          [1, 1],
        )
        // past its end the reading kept is not served: the row is read, and says why
        yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS + 1)
        const ended = yield* reads_of(Effect.flip(repo.authenticate(token)))
        assert.strictEqual(ended.result.reason, "expired")
        assert.strictEqual(ended.reads, 1)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
    )

    it.effect("validations that miss the same session at once wait for one read", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const { token } = yield* repo.create_session((yield* create_account()).id)
        const { result, reads } = yield* reads_of(
          Effect.all(
            Array.from({ length: 10 }, () => repo.validate(token)),
            { concurrency: "unbounded" },
          ),
        )
        assert.isTrue(result.every(Option.isSome))
        assert.strictEqual(reads, 1)
      }),
    )

    it.effect(
      "a miss does not wait for a read begun before an invalidation of its session, nor for one interrupted",
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const cache = yield* SessionCache
          const { token, session } = yield* repo.create_session((yield* create_account()).id)
          /**
           * Two validations while the session table is locked, so the first
           * one's read waits meanwhile; `between` runs before the second
           * starts, and the first is interrupted before the lock goes if asked.
           */
          const two_validations = (between: Effect.Effect<void>, interrupt_first = false) =>
            reads_of(
              Effect.gen(function* () {
                const release = yield* hold_in_transaction((tx) =>
                  tx.execute(sql`LOCK TABLE auth_session IN ACCESS EXCLUSIVE MODE`),
                )
                const first = yield* Effect.forkChild(repo.validate(token))
                yield* real_sleep(50)
                yield* between
                const second = yield* Effect.forkChild(repo.validate(token))
                yield* real_sleep(50)
                if (interrupt_first) yield* Fiber.interrupt(first)
                yield* release
                return { first: yield* Fiber.await(first), second: yield* Fiber.join(second) }
              }),
            )
          const valid = (exit: Exit.Exit<Option.Option<unknown>, unknown>) =>
            Exit.isSuccess(exit) && Option.isSome(exit.value)
          // nothing in between: the second waits for the first one's read
          const joined = yield* two_validations(Effect.void)
          assert.strictEqual(joined.reads, 1)
          // the reading was kept: forget it, then an invalidation (as a notification brings) in between
          cache.forget([session.id])
          const invalidated = yield* two_validations(Effect.sync(() => cache.forget([session.id])))
          assert.strictEqual(invalidated.reads, 2)
          for (const { result } of [joined, invalidated])
            assert.isTrue(valid(result.first) && Option.isSome(result.second))
          // the first one interrupted while the second waits for its read: the second reads again
          cache.forget([session.id])
          const after_interrupt = yield* two_validations(Effect.void, true)
          assert.isTrue(Option.isSome(after_interrupt.result.second))
          assert.strictEqual(after_interrupt.reads, 2)
        }),
    )

    it.effect("a hit still starts a touch when one is due, and the next validation reads the row again", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const { token, session } = yield* repo.create_session((yield* create_account()).id)
        yield* repo.validate(token)
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS + 1)
        const touched = yield* statements_of(
          Effect.andThen(
            repo.validate(token),
            SessionTouches.use((touches) => touches.await_idle),
          ),
        )
        assert.isTrue(touched.statements.some((text) => /update "auth_session"/.test(text)))
        const [row] = yield* on_db((db) =>
          db.execute(sql`SELECT last_seen_at FROM auth_session WHERE id = ${session.id}`),
        ).pipe(Effect.map((result) => (result as unknown as { rows: Array<{ last_seen_at: string }> }).rows))
        assert.isAbove(new Date(String(row?.last_seen_at)).getTime(), session.last_seen_at.getTime())
        assert.strictEqual((yield* reads_of(repo.validate(token))).reads, 1)
      }),
    )

    it.effect("a revoke in this process is seen by its next validation, at once", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const { token } = yield* repo.create_session((yield* create_account()).id)
        yield* repo.validate(token)
        yield* repo.revoke(token)
        assert.isTrue(Option.isNone(yield* repo.validate(token)))
      }),
    )

    it.effect("a DELETE or an UPDATE typed by hand reaches the cache by notification", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const deleted = yield* repo.create_session(owner.id)
        const cut = yield* repo.create_session(owner.id)
        const touched = yield* repo.create_session(owner.id)
        for (const { token } of [deleted, cut, touched]) yield* repo.validate(token)
        yield* on_db((db) => db.execute(sql`DELETE FROM auth_session WHERE id = ${deleted.session.id}`))
        const delete_ms = yield* until_rejected(deleted.token)
        yield* on_db((db) =>
          db.execute(sql`UPDATE auth_session SET expires_at = '1970-01-01' WHERE id = ${cut.session.id}`),
        )
        const update_ms = yield* until_rejected(cut.token)
        console.log(
          `cache (${backend.name}): a hand-made DELETE seen after ${delete_ms.toFixed(1)} ms, an UPDATE after ${update_ms.toFixed(1)} ms`,
        )
        // a touch (last_seen_at moved forward) tells nothing: the reading stays
        yield* on_db((db) =>
          db.execute(
            sql`UPDATE auth_session SET last_seen_at = last_seen_at + interval '1 second' WHERE id = ${touched.session.id}`,
          ),
        )
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
        assert.strictEqual((yield* reads_of(repo.validate(touched.token))).reads, 0)
      }),
    )

    it.effect("without the notifying trigger the cached repo refuses to start, and says what to apply", () =>
      Effect.gen(function* () {
        const without_trigger = Layer.effectDiscard(
          Effect.andThen(
            migrate,
            on_db((db) => db.execute(sql`DROP TRIGGER auth_session_notify_truncate ON auth_session`)),
          ),
        ).pipe(Layer.provideMerge(backend.database()))
        const exit = yield* Effect.exit(
          Effect.scoped(
            Layer.build(
              SessionRepo.layer_cached(auth_session).pipe(
                Layer.provide(Layer.succeed(SessionPolicy, DEFAULT_SESSION_POLICY)),
                Layer.provide(without_trigger),
              ),
            ),
          ),
        )
        assert.isTrue(Exit.isFailure(exit))
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "session_change_trigger_sql")
      }),
    )

    it.effect("a rolled-back revoke leaves the reading kept", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const { token } = yield* repo.create_session((yield* create_account()).id)
        yield* repo.validate(token)
        const database = yield* Database
        const rolled_back = database.transaction(Effect.andThen(repo.revoke(token), Effect.fail("no")))
        assert.isTrue(Exit.isFailure(yield* Effect.exit(rolled_back)))
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
        assert.strictEqual((yield* reads_of(repo.validate(token))).reads, 0)
      }),
    )
  })

for (const backend of backends) suite(backend)

if (postgres_backend !== undefined && server_url !== undefined) {
  const server = server_url
  layer(cached_repo(postgres_backend.database()))(
    "the validation cache across processes on postgres",
    (it) => {
      /** A second service on the same database: its own pool and repo, no cache. */
      const other_process = Effect.gen(function* () {
        const rows = yield* on_db((db) => db.execute(sql`SELECT current_database() AS name`))
        const url = new URL(server)
        url.pathname = `/${(rows as unknown as { rows: Array<{ name: string }> }).rows[0]?.name}`
        return yield* Effect.acquireRelease(
          Effect.sync(() =>
            ManagedRuntime.make(
              SessionRepo.layer(auth_session).pipe(
                Layer.provideMerge(Layer.succeed(SessionPolicy, DEFAULT_SESSION_POLICY)),
                Layer.provideMerge(layer_postgres({ url: Redacted.make(url.toString()), pool_size: 2 })),
              ),
            ),
          ),
          (runtime) => Effect.promise(() => runtime.dispose()),
        )
      })

      it.effect("a revoke committed by another process stops validating here within milliseconds", () =>
        Effect.scoped(
          Effect.gen(function* () {
            const repo = yield* SessionRepo
            const other = yield* other_process
            const delays: Array<number> = []
            for (let i = 0; i < 20; i++) {
              const { token } = yield* repo.create_session((yield* create_account()).id)
              yield* repo.validate(token)
              yield* Effect.promise(() => other.runPromise(SessionRepo.use((r) => r.revoke(token))))
              delays.push(yield* until_rejected(token))
            }
            delays.sort((a, b) => a - b)
            console.log(
              `cache: revoke by another process seen after ${delays.map((d) => d.toFixed(1)).join(", ")} ms`,
            )
            assert.isBelow(delays.at(-1) as number, 1000)
          }),
        ),
      )

      it.effect("with its listener's connection lost, the cache is bypassed until it listens again", () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const cache = yield* SessionCache
          const owner = yield* create_account()
          const { token, session } = yield* repo.create_session(owner.id)
          yield* repo.validate(token)
          // the listener's connection dies, and no new connection is let in meanwhile
          const name = yield* current_database
          yield* as_admin(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`)
          yield* on_db((db) =>
            db.execute(
              sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'effect-session-repo listener' AND datname = current_database()`,
            ),
          )
          yield* wait_until(() => !cache.listening())
          // a reading made while nobody listens is not kept: a revoke made meanwhile is never served
          assert.isTrue(Option.isSome(yield* repo.validate(token)))
          yield* on_db((db) => db.execute(sql`DELETE FROM auth_session WHERE id = ${session.id}`))
          assert.isTrue(Option.isNone(yield* repo.validate(token)))
          // connections let in again: it listens again, and readings are served again
          yield* as_admin(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`)
          yield* wait_until(() => cache.listening())
          const again = yield* repo.create_session(owner.id)
          yield* repo.validate(again.token)
          assert.strictEqual((yield* reads_of(repo.validate(again.token))).reads, 0)
        }),
      )

      // needs a PgBouncer: CI's PgBouncer step sets PGBOUNCER_URL; elsewhere the test is reported skipped
      const pooler = process.env.PGBOUNCER_URL
      ;(pooler === undefined ? it.effect.skip : it.effect)(
        "through PgBouncer without a listen URL it refuses to start, and says why",
        () =>
          Effect.gen(function* () {
            if (pooler === undefined) return // (for the type: the test is skipped then)
            const rows = yield* on_db((db) => db.execute(sql`SELECT current_database() AS name`))
            const url = new URL(pooler)
            url.pathname = `/${(rows as unknown as { rows: Array<{ name: string }> }).rows[0]?.name}`
            const exit = yield* Effect.exit(
              Effect.scoped(
                Layer.build(
                  SessionRepo.layer_cached(auth_session).pipe(
                    Layer.provideMerge(Layer.succeed(SessionPolicy, DEFAULT_SESSION_POLICY)),
                    Layer.provideMerge(
                      layer_postgres({ url: Redacted.make(url.toString()), prepare: false }),
                    ),
                  ),
                ),
              ),
            )
            assert.isTrue(Exit.isFailure(exit))
            assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "PgBouncer")
          }),
      )
    },
  )
} else report_skipped_postgres("the validation cache across processes")
