import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { account, auth_session, Db, DbError, generate_session_token, migrate } from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { create_account } from "./support/fixtures.ts"

const attempt = <A>(f: (db: Db["Service"]) => Promise<A>) =>
  Db.use((db) => Effect.tryPromise({ try: () => f(db), catch: (error) => DbError.from("test", error) }))

for (const backend of backends) {
  layer(backend.layer)(`schema and migrations on ${backend.name}`, (it) => {
    it.effect("migrate is idempotent", () =>
      Effect.gen(function* () {
        yield* migrate
        yield* migrate
      }),
    )

    it.effect("a raw token can never be stored as a session id", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const token = yield* generate_session_token
        const error = yield* Effect.flip(
          attempt((db) =>
            db.insert(auth_session).values({ id: token, account_id: owner.id, expires_at: new Date() }),
          ),
        )
        assert.strictEqual(error.sqlstate, "23514")
        assert.strictEqual(error.constraint, "auth_session_id_is_hash")
      }),
    )

    it.effect("usernames are unique regardless of case", () =>
      Effect.gen(function* () {
        yield* create_account("Carol")
        const error = yield* Effect.flip(attempt((db) => db.insert(account).values({ username: "cAROL" })))
        assert.strictEqual(error.reason, "unique_violation")
      }),
    )
  })
}

report_skipped_postgres("schema and migrations")
