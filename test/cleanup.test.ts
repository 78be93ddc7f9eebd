import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import {
  Database,
  DEFAULT_SESSION_POLICY,
  layer_session_cleanup,
  query_session_cleanup_expired,
  SessionPolicy,
} from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import {
  create_account,
  hold_session_locks,
  insert_session,
  session_rows,
  truncate_all,
} from "./support/fixtures.ts"

const SECOND = 1000

/** Polls `check` on the live clock until it holds, for at most `ms`. */
const eventually = <R>(
  check: Effect.Effect<boolean, never, R>,
  ms = 5000,
): Effect.Effect<boolean, never, R> =>
  TestClock.withLive(
    Effect.gen(function* () {
      const deadline = Date.now() + ms
      while (!(yield* check)) {
        if (Date.now() > deadline) return false
        yield* Effect.sleep(20)
      }
      return true
    }),
  )

for (const backend of backends) {
  layer(backend.layer)(`session cleanup on ${backend.name}`, (it) => {
    it.effect("layer_session_cleanup deletes expired sessions on its schedule", () =>
      Effect.gen(function* () {
        yield* truncate_all
        const owner = yield* create_account()
        for (let i = 0; i < 5; i++) yield* insert_session(owner.id, SECOND)
        const { session: live } = yield* insert_session(owner.id)
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(layer_session_cleanup("1 minute"), scope)
        yield* TestClock.adjust(SECOND)
        // the first pass runs at start, before anything expired
        assert.strictEqual((yield* session_rows(owner.id)).length, 6)
        yield* TestClock.adjust("1 minute")
        const cleaned = yield* eventually(Effect.map(session_rows(owner.id), (rows) => rows.length === 1))
        yield* Scope.close(scope, Exit.void)
        assert.isTrue(cleaned, "the scheduled pass did not run")
        assert.deepStrictEqual(
          (yield* session_rows(owner.id)).map((s) => s.id),
          [live.id],
        )
      }),
    )

    it.effect("a cleanup batch size the policy cannot honour is InvalidInput, not an endless loop", () =>
      Effect.gen(function* () {
        for (const cleanup_batch_size of [0, -5, 1.5]) {
          const error = yield* Effect.flip(
            query_session_cleanup_expired().pipe(
              Effect.provideService(SessionPolicy, { ...DEFAULT_SESSION_POLICY, cleanup_batch_size }),
            ),
          )
          assert.strictEqual(error._tag, "InvalidInput")
        }
      }),
    )

    if (backend.name === "postgres") {
      it.effect("cleanup skips rows another transaction holds instead of waiting for them", () =>
        Effect.gen(function* () {
          yield* truncate_all
          const _database = yield* Database
          const owner = yield* create_account()
          const expired = []
          for (let i = 0; i < 10; i++) expired.push((yield* insert_session(owner.id, SECOND)).session.id)
          yield* TestClock.adjust(SECOND)
          // another instance's cleanup (or any writer) holding 4 expired rows
          const release = yield* hold_session_locks(expired.slice(0, 4))
          const policy = { ...DEFAULT_SESSION_POLICY, cleanup_batch_size: 3 }
          const cleanup = yield* Effect.forkChild(
            query_session_cleanup_expired().pipe(Effect.provideService(SessionPolicy, policy)),
          )
          const finished = yield* eventually(
            Effect.sync(() => cleanup.pollUnsafe() !== undefined),
            2000,
          )
          yield* release
          assert.isTrue(finished, "cleanup waited for locked rows")
          assert.strictEqual(yield* Fiber.join(cleanup), 6)
          assert.strictEqual(yield* query_session_cleanup_expired(), 4)
          assert.strictEqual((yield* session_rows(owner.id)).length, 0)
        }),
      )
    }
  })
}

report_skipped_postgres("session cleanup")
