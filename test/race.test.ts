import { assert, describe, layer } from "@effect/vitest"
import { Clock, Effect, Option } from "effect"
import {
  Database,
  generate_session_token,
  hash_session_token,
  query_create_session,
  query_session_enforce_limit,
  SessionRepo,
} from "../src/index.ts"
import { postgres_backend, report_skipped_postgres } from "./support/backends.ts"
import { create_account, session_rows } from "./support/fixtures.ts"

const TRIALS = 20
const CONCURRENT_LOGINS = 25
const MAX_SESSIONS = 3

// Concurrency needs a real server: PGlite has one connection, so it can never race.
if (postgres_backend !== undefined) {
  layer(postgres_backend.layer)("the per-account limit under concurrent logins on postgres", (it) => {
    it.effect(
      `${TRIALS} trials × ${CONCURRENT_LOGINS} concurrent create_session, max ${MAX_SESSIONS}: never above the limit`,
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const peaks: Array<number> = []
          for (let trial = 0; trial < TRIALS; trial++) {
            const owner = yield* create_account()
            const created = yield* Effect.all(
              Array.from({ length: CONCURRENT_LOGINS }, () =>
                repo.create_session(owner.id, { max_sessions: MAX_SESSIONS }),
              ),
              { concurrency: "unbounded" },
            )
            assert.strictEqual(created.length, CONCURRENT_LOGINS)
            const rows = yield* session_rows(owner.id)
            peaks.push(rows.length)
            // the survivors are sessions this trial created
            const ids = new Set(created.map((c) => c.session.id))
            for (const row of rows) assert.isTrue(ids.has(row.id))
          }
          console.log(`limit race: sessions left per trial ${JSON.stringify(peaks)}`)
          assert.deepStrictEqual(
            peaks.filter((n) => n !== MAX_SESSIONS),
            [],
            "an account ended with a session count other than its limit",
          )
        }),
    )

    it.effect(
      `the specification's own composition (insert, then enforce_limit) holds the limit too: ${TRIALS} × ${CONCURRENT_LOGINS}`,
      () =>
        Effect.gen(function* () {
          const database = yield* Database
          const counts: Array<number> = []
          for (let trial = 0; trial < TRIALS; trial++) {
            const owner = yield* create_account()
            const login = Effect.gen(function* () {
              const token_hash = hash_session_token(yield* generate_session_token)
              const now = yield* Clock.currentTimeMillis
              yield* query_create_session(token_hash, owner.id, new Date(now + 60_000))
              return yield* query_session_enforce_limit(owner.id, MAX_SESSIONS)
            })
            yield* Effect.all(
              Array.from({ length: CONCURRENT_LOGINS }, () => database.transaction(login)),
              { concurrency: "unbounded" },
            )
            counts.push((yield* session_rows(owner.id)).length)
          }
          console.log(`limit race (query layer): sessions left per trial ${JSON.stringify(counts)}`)
          assert.deepStrictEqual(
            counts.filter((n) => n !== MAX_SESSIONS),
            [],
          )
        }),
    )

    it.effect("each login's session is valid when its creation returns (sequential, same instant)", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        for (let i = 0; i < CONCURRENT_LOGINS; i++) {
          const { token } = yield* repo.create_session(owner.id, { max_sessions: 1 })
          assert.isTrue(Option.isSome(yield* repo.validate(token)))
        }
      }),
    )
  })
} else {
  describe("the per-account limit under concurrent logins", () => {
    report_skipped_postgres("limit race")
  })
}
