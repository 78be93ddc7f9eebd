import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Schema } from "effect"
import { after_commit } from "../src/db/after-commit.ts"
import { Database, Db } from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { create_account, insert_session, session_rows } from "./support/fixtures.ts"

class Boom extends Schema.TaggedError<Boom>()("Boom", { message: Schema.String }) {}

for (const backend of backends) {
  layer(backend.layer)(`after_commit on ${backend.name}`, (it) => {
    /**
     * A new account, and `record(label)`: an action that records, when it
     * runs, how many of the account's sessions a new statement on the pool sees.
     */
    const setup = Effect.gen(function* () {
      const database = yield* Database
      const pool = yield* Db
      const owner = yield* create_account()
      const seen: Array<string> = []
      const record = (label: string) =>
        Effect.flatMap(Effect.provideService(session_rows(owner.id), Db, pool), (rows) =>
          Effect.sync(() => void seen.push(`${label}: ${rows.length}`)),
        )
      return { database, owner, seen, record }
    })

    it.effect("runs once the transaction committed, its change visible from another statement", () =>
      Effect.gen(function* () {
        const { database, owner, seen, record } = yield* setup
        yield* database.transaction(
          Effect.gen(function* () {
            yield* insert_session(owner.id)
            yield* after_commit(record("first"))
            yield* after_commit(record("second"))
            assert.deepStrictEqual(seen, [], "nothing runs before COMMIT")
          }),
        )
        assert.deepStrictEqual(seen, ["first: 1", "second: 1"])
      }),
    )

    it.effect("never runs for work that rolled back (a failure, a defect)", () =>
      Effect.gen(function* () {
        const { database, owner, seen, record } = yield* setup
        const failed = yield* Effect.exit(
          database.transaction(
            Effect.gen(function* () {
              yield* insert_session(owner.id)
              yield* after_commit(record("failed"))
              return yield* new Boom({ message: "after the insert" })
            }),
          ),
        )
        const died = yield* Effect.exit(
          database.transaction(Effect.flatMap(after_commit(record("died")), () => Effect.die("defect"))),
        )
        assert.isTrue(Exit.isFailure(failed) && Exit.isFailure(died))
        assert.deepStrictEqual(seen, [])
        assert.strictEqual((yield* session_rows(owner.id)).length, 0)
      }),
    )

    it.effect("a savepoint's actions wait for the outer commit, and go with its rollback", () =>
      Effect.gen(function* () {
        const { database, owner, seen, record } = yield* setup
        yield* database.transaction(
          Effect.gen(function* () {
            yield* after_commit(record("outer"))
            yield* database.transaction(after_commit(record("released")))
            assert.deepStrictEqual(seen, [], "a released savepoint's action waits for the outer COMMIT")
            yield* Effect.flip(
              database.transaction(
                Effect.flatMap(after_commit(record("rolled back")), () =>
                  Effect.fail(new Boom({ message: "inner" })),
                ),
              ),
            )
            yield* insert_session(owner.id)
          }),
        )
        assert.deepStrictEqual(seen, ["outer: 1", "released: 1"])
      }),
    )

    it.effect("outside a transaction it runs at once", () =>
      Effect.gen(function* () {
        const { owner, seen, record } = yield* setup
        yield* insert_session(owner.id)
        yield* after_commit(record("now"))
        assert.deepStrictEqual(seen, ["now: 1"])
      }),
    )

    it.effect(
      "actions that need a connection run, from as many transactions at once as there are connections",
      () =>
        Effect.gen(function* () {
          const { database, owner, seen, record } = yield* setup
          const transactions = Array.from({ length: backend.connections }, (_, i) =>
            database.transaction(
              Effect.andThen(insert_session(owner.id), after_commit(record(`transaction ${i}`))),
            ),
          )
          // an action run while its transaction still held its connection waited
          // for another one: with every connection held, forever (the test's timeout)
          yield* Effect.all(transactions, { concurrency: "unbounded" })
          assert.strictEqual(seen.length, backend.connections)
        }),
    )

    it.effect("interrupted after its commit, the transaction still runs each action once", () =>
      Effect.gen(function* () {
        const { database, owner } = yield* setup
        const committed = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        let runs = 0
        const fiber = yield* Effect.forkChild(
          database.transaction(
            Effect.gen(function* () {
              yield* insert_session(owner.id)
              yield* after_commit(Deferred.succeed(committed, undefined))
              yield* after_commit(
                Effect.andThen(
                  Deferred.await(gate),
                  Effect.sync(() => {
                    runs++
                  }),
                ),
              )
            }),
          ),
        )
        yield* Deferred.await(committed)
        // interrupted while the second action waits
        fiber.interruptUnsafe()
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.await(fiber)
        assert.strictEqual(runs, 1)
      }),
    )

    it.effect("an action that fails is logged; the others run and the caller gets its value", () =>
      Effect.gen(function* () {
        const { database, owner, seen, record } = yield* setup
        const value = yield* database.transaction(
          Effect.gen(function* () {
            yield* insert_session(owner.id)
            yield* after_commit(Effect.die("an action's defect"))
            yield* after_commit(record("after it"))
            return "committed"
          }),
        )
        assert.strictEqual(value, "committed")
        assert.deepStrictEqual(seen, ["after it: 1"])
      }),
    )
  })
}
report_skipped_postgres("after-commit")
