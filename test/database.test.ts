import { assert, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import {
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  Database,
  Db,
  query_create_session,
  query_session_get_valid,
  SessionRepo,
  Tx,
} from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { create_account, insert_session, on_db, session_rows } from "./support/fixtures.ts"

/** Connections of this database that sit inside a transaction (PostgreSQL only). */
const open_transactions = on_db((db) =>
  db.$count(
    sql`pg_stat_activity`,
    sql`datname = current_database() AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()`,
  ),
)

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
            }).pipe(
              // a slow cleanup inside: the interruption must still wait for it and the rollback
              Effect.onInterrupt(() => TestClock.withLive(Effect.sleep(100))),
            ),
          ),
        )
        yield* Deferred.await(inserted)
        yield* Fiber.interrupt(fiber)
        // the rollback is done when the interruption completes: no connection is left inside a transaction
        if (backend.name === "postgres") assert.strictEqual(yield* open_transactions, 0)
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

    it.effect("savepoints nest three deep: the innermost failure undoes only its own work", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const kept = yield* database.transaction(
          Effect.gen(function* () {
            const outer = yield* insert_session(owner.id)
            const middle = yield* database.transaction(
              Effect.gen(function* () {
                const { session } = yield* insert_session(owner.id)
                const inner = yield* Effect.flip(
                  database.transaction(
                    insert_session(owner.id).pipe(Effect.andThen(new Boom({ message: "inner" }))),
                  ),
                )
                assert.strictEqual(inner._tag, "Boom")
                return session.id
              }),
            )
            return [outer.session.id, middle]
          }),
        )
        assert.sameMembers(
          (yield* session_rows(owner.id)).map((s) => s.id),
          kept,
        )
      }).pipe(Effect.timeout("10 seconds"), TestClock.withLive),
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

    it.effect("concurrent nested transactions take turns, so one's rollback cannot undo the other", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const outcomes = yield* database.transaction(
          Effect.all(
            [
              Effect.flip(
                database.transaction(
                  insert_session(owner.id).pipe(Effect.andThen(new Boom({ message: "first fails" }))),
                ),
              ),
              database.transaction(insert_session(owner.id)),
            ],
            { concurrency: "unbounded" },
          ),
        )
        assert.strictEqual(outcomes[0]._tag, "Boom")
        assert.deepStrictEqual(
          (yield* session_rows(owner.id)).map((s) => s.id),
          [outcomes[1].session.id],
        )
      }),
    )

    it.effect("a transaction interrupted while waiting for a connection returns at once and never runs", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const release = yield* Deferred.make<void>()
        const holding = yield* Deferred.make<void>()
        let held = 0
        // take every connection the backend has
        const holders = yield* Effect.forkChild(
          Effect.all(
            Array.from({ length: backend.connections }, () =>
              database.transaction(
                Effect.gen(function* () {
                  if (++held === backend.connections) yield* Deferred.succeed(holding, undefined)
                  yield* Deferred.await(release)
                }),
              ),
            ),
            { concurrency: "unbounded" },
          ),
        )
        yield* Deferred.await(holding)
        let ran = false
        const waiting = yield* Effect.forkChild(
          database.transaction(
            Effect.sync(() => {
              ran = true
            }).pipe(Effect.andThen(insert_session(owner.id))),
          ),
        )
        yield* TestClock.withLive(Effect.sleep(50))
        const interrupting = yield* Effect.forkChild(Fiber.interrupt(waiting))
        yield* TestClock.withLive(Effect.sleep(200))
        assert.isDefined(interrupting.pollUnsafe(), "the interruption waited for a connection")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holders)
        // the late transaction got its connection and rolled back without running the effect
        yield* TestClock.withLive(Effect.sleep(200))
        assert.isFalse(ran)
        assert.strictEqual((yield* session_rows(owner.id)).length, 0)
      }),
    )

    it.effect("SessionRepo methods called inside a transaction join it", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token } = yield* repo.create_session(owner.id)
        const outcome = yield* Effect.flip(
          database.transaction(
            Effect.gen(function* () {
              assert.isTrue(Option.isSome(yield* repo.validate(token)))
              assert.strictEqual(yield* repo.revoke_all_for_account(owner.id), 1)
              return yield* new Boom({ message: "undo the revoke" })
            }),
          ),
        )
        assert.strictEqual(outcome._tag, "Boom")
        assert.isTrue(
          Option.isSome(yield* repo.validate(token)),
          "the revoke escaped the rolled-back transaction",
        )
      }),
    )

    it.effect("an extension due inside a transaction is written there, not waited for on the pool", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token, session } = yield* repo.create_session(owner.id)
        yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS + 1)
        // on PGlite, waiting for a pool touch here would wait for this very transaction
        const authenticated = yield* database.transaction(repo.authenticate(token))
        assert.isTrue(authenticated.extended)
        const row = yield* session_rows(owner.id)
        assert.isAbove(row[0]?.expires_at.getTime() ?? 0, session.expires_at.getTime())
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
