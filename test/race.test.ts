import { assert, describe, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import { SessionRepo } from "../src/index.ts"
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
