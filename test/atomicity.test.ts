import { assert, layer } from "@effect/vitest"
import { eq } from "drizzle-orm"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { account, SessionRepo } from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { create_account, hold_in_transaction, session_rows, with_refused } from "./support/fixtures.ts"

for (const backend of backends) {
  layer(backend.layer)(`create_session is all or nothing on ${backend.name}`, (it) => {
    it.effect("a failure between the insert and the eviction leaves no row", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        yield* repo.create_session(owner.id)
        const error = yield* Effect.flip(
          // the eviction's DELETE fails after the insert
          with_refused("DELETE", repo.create_session(owner.id)),
        )
        assert.strictEqual(error._tag, "DbError")
        assert.strictEqual((yield* session_rows(owner.id)).length, 1)
      }),
    )

    it.effect("an interruption while the creation waits for the account lock leaves no row", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        // another login of the same account, holding the lock
        const release = yield* hold_in_transaction((tx) =>
          tx.select().from(account).where(eq(account.id, owner.id)).for("no key update"),
        )
        const creation = yield* Effect.forkChild(repo.create_session(owner.id))
        // on PostgreSQL it has inserted and now waits for the lock; on PGlite for the connection
        yield* TestClock.withLive(Effect.sleep(200))
        // On PostgreSQL the interruption completes once the rollback has run, and
        // the rollback queues behind the statement waiting for the lock: so it is
        // waited for in the background while the lock is released.
        const interrupting = yield* Effect.forkChild(Fiber.interrupt(creation))
        // let the interruption land before the lock is released
        yield* TestClock.withLive(Effect.sleep(100))
        yield* release
        yield* Fiber.join(interrupting)
        assert.strictEqual((yield* session_rows(owner.id)).length, 0)
      }),
    )
  })
}

report_skipped_postgres("create_session is all or nothing")
