import { assert, layer } from "@effect/vitest"
import { eq, sql } from "drizzle-orm"
import { Deferred, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { account, Database, SessionRepo, Tx } from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { create_account, on_db, session_rows } from "./support/fixtures.ts"

/** Makes every DELETE on auth_session fail: the eviction after the insert. */
const refuse_deletes = on_db(async (db) => {
  await db.execute(sql`
    CREATE OR REPLACE FUNCTION test_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'eviction refused'; END $$`)
  await db.execute(sql`
    CREATE OR REPLACE TRIGGER test_refuse_delete BEFORE DELETE ON auth_session
    FOR EACH STATEMENT EXECUTE FUNCTION test_refuse_delete()`)
})
const allow_deletes = on_db((db) =>
  db.execute(sql`DROP TRIGGER IF EXISTS test_refuse_delete ON auth_session`),
)

for (const backend of backends) {
  layer(backend.layer)(`create_session is all or nothing on ${backend.name}`, (it) => {
    it.effect("a failure between the insert and the eviction leaves no row", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        yield* repo.create_session(owner.id)
        const error = yield* Effect.flip(
          refuse_deletes.pipe(Effect.andThen(repo.create_session(owner.id)), Effect.ensuring(allow_deletes)),
        )
        assert.strictEqual(error._tag, "DbError")
        assert.strictEqual((yield* session_rows(owner.id)).length, 1)
      }),
    )

    it.effect("an interruption while the creation waits for the account lock leaves no row", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        // another login of the same account, holding the lock
        const holder = yield* Effect.forkChild(
          database.transaction(
            Effect.gen(function* () {
              yield* Tx.use((tx) =>
                Effect.promise(() =>
                  tx.select().from(account).where(eq(account.id, owner.id)).for("no key update"),
                ),
              )
              yield* Deferred.succeed(locked, undefined)
              yield* Deferred.await(release)
            }),
          ),
        )
        yield* Deferred.await(locked)
        const creation = yield* Effect.forkChild(repo.create_session(owner.id))
        // on PostgreSQL it has inserted and now waits for the lock; on PGlite for the connection
        yield* TestClock.withLive(Effect.sleep(200))
        // On PostgreSQL the interruption completes once the rollback has run, and
        // the rollback queues behind the statement waiting for the lock: so it is
        // waited for in the background while the lock is released.
        const interrupting = yield* Effect.forkChild(Fiber.interrupt(creation))
        // let the interruption land before the lock is released
        yield* TestClock.withLive(Effect.sleep(100))
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        yield* Fiber.join(interrupting)
        assert.strictEqual((yield* session_rows(owner.id)).length, 0)
      }),
    )
  })
}

report_skipped_postgres("create_session is all or nothing")
