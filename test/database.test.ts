import { assert, layer } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Database, Db, query_create_session, query_session_get_valid, Tx } from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { create_account, insert_session, session_rows } from "./support/fixtures.ts"

class Boom extends Schema.TaggedError<Boom>()("Boom", { message: Schema.String }) {}

for (const backend of backends) {
  layer(backend.layer)(`Database.transaction on ${backend.name}`, (it) => {
    it.effect("commits on success and provides Tx and Db bound to the transaction", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const pool = yield* Db
        const owner = yield* create_account()
        assert.isTrue(Option.isNone(yield* Effect.serviceOption(Tx)))
        const inside = yield* database.transaction(
          Effect.gen(function* () {
            const tx = yield* Tx
            const db = yield* Db
            yield* insert_session(owner.id)
            return { same_handle: tx === db, is_pool: db === pool }
          }),
        )
        assert.deepStrictEqual(inside, { same_handle: true, is_pool: false })
        assert.strictEqual((yield* session_rows(owner.id)).length, 1)
      }),
    )

    it.effect("a typed failure rolls back and comes out unchanged", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const boom = new Boom({ message: "after insert" })
        const error = yield* Effect.flip(
          database.transaction(
            Effect.gen(function* () {
              yield* insert_session(owner.id)
              return yield* boom
            }),
          ),
        )
        assert.strictEqual(error, boom)
        assert.strictEqual((yield* session_rows(owner.id)).length, 0)
      }),
    )

    it.effect("a defect rolls back and stays a defect", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const defect = new Error("bug")
        const exit = yield* Effect.exit(
          database.transaction(
            Effect.gen(function* () {
              yield* insert_session(owner.id)
              return yield* Effect.die(defect)
            }),
          ),
        )
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) assert.deepStrictEqual(Cause.squash(exit.cause), defect)
        assert.strictEqual((yield* session_rows(owner.id)).length, 0)
      }),
    )

    it.effect("a failing statement rolls back the statements before it", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const error = yield* Effect.flip(
          database.transaction(
            Effect.gen(function* () {
              const { session } = yield* insert_session(owner.id)
              yield* insert_session(owner.id)
              // the same id again violates the primary key
              yield* query_create_session(session.id, owner.id, session.expires_at)
            }),
          ),
        )
        assert.strictEqual(error._tag, "DbError")
        assert.strictEqual((yield* session_rows(owner.id)).length, 0)
      }),
    )

    it.effect("interruption rolls back, and the connection serves again", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const inserted = yield* Deferred.make<void>()
        const fiber = yield* Effect.forkChild(
          database.transaction(
            Effect.gen(function* () {
              yield* insert_session(owner.id)
              yield* Deferred.succeed(inserted, undefined)
              return yield* Effect.never
            }),
          ),
        )
        yield* Deferred.await(inserted)
        yield* Fiber.interrupt(fiber)
        // on PGlite this statement would wait forever behind an open transaction
        assert.strictEqual((yield* session_rows(owner.id)).length, 0)
      }),
    )

    it.effect("nested transactions are savepoints: an inner failure undoes only the inner work", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const kept = yield* database.transaction(
          Effect.gen(function* () {
            const { session } = yield* insert_session(owner.id)
            const inner = yield* Effect.flip(
              database.transaction(
                Effect.gen(function* () {
                  yield* insert_session(owner.id)
                  return yield* new Boom({ message: "inner" })
                }),
              ),
            )
            assert.strictEqual(inner._tag, "Boom")
            return session.id
          }),
        )
        assert.deepStrictEqual(
          (yield* session_rows(owner.id)).map((s) => s.id),
          [kept],
        )
      }),
    )

    it.effect("uncommitted rows are invisible outside; on PGlite outside statements wait for the end", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const inserted = yield* Deferred.make<string>()
        const release = yield* Deferred.make<void>()
        const tx = yield* Effect.forkChild(
          database.transaction(
            Effect.gen(function* () {
              const { session } = yield* insert_session(owner.id)
              yield* Deferred.succeed(inserted, session.id)
              yield* Deferred.await(release)
            }),
          ),
        )
        const id = yield* Deferred.await(inserted)
        const outside = yield* Effect.forkChild(query_session_get_valid(id))
        yield* TestClock.withLive(Effect.sleep(200))
        if (backend.name === "pglite") {
          assert.isUndefined(outside.pollUnsafe(), "PGlite ran a statement inside another transaction")
        } else {
          assert.isUndefined(yield* Fiber.join(outside))
        }
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(tx)
        if (backend.name === "pglite") assert.isDefined(yield* Fiber.join(outside))
        assert.isDefined(yield* query_session_get_valid(id))
      }),
    )

    it.effect("rolled-back transactions return their connections to the pool", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const failing = database.transaction(
          Effect.gen(function* () {
            yield* insert_session(owner.id)
            return yield* new Boom({ message: "x" })
          }),
        )
        // more than the pool's 10 connections, all at once
        yield* Effect.all(
          Array.from({ length: 30 }, () => Effect.flip(failing)),
          { concurrency: "unbounded" },
        )
        yield* insert_session(owner.id)
        assert.strictEqual((yield* session_rows(owner.id)).length, 1)
      }),
    )
  })
}

report_skipped_postgres("Database.transaction")
