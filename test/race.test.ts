import { assert, describe, layer } from "@effect/vitest"
import { Clock, Effect, Exit, Option } from "effect"
import { TestClock } from "effect/testing"
import {
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  Database,
  generate_session_token,
  hash_session_token,
  query_create_session,
  query_session_enforce_limit,
  SessionRepo,
  SessionTouches,
} from "../src/index.ts"
import { type AppAccounts, app_accounts, apply_app_schema, user_session } from "./support/app-schema.ts"
import {
  any_key_repo,
  on_table,
  postgres_backend,
  report_skipped_postgres,
  through_pgbouncer,
  with_repo,
} from "./support/backends.ts"
import { create_account, session_rows } from "./support/fixtures.ts"

const TRIALS = 20
/**
 * The scale for the plain limit race: 200 trials × 25 logins. Through
 * PgBouncer a quarter of it: there the question is whether the pooler keeps
 * the lock's transaction whole (one lost lock breaks the limit at once), not
 * the odds of an interleaving.
 */
const TRIAL_SHARE = through_pgbouncer ? 4 : 1
const LIMIT_TRIALS = 200 / TRIAL_SHARE
const CONCURRENT_LOGINS = 25
const MAX_SESSIONS = 3
const APP_TRIALS = 100 / TRIAL_SHARE

// Concurrency needs a real server: PGlite has one connection, so it can never race.
if (postgres_backend !== undefined) {
  layer(postgres_backend.layer)("the per-account limit under concurrent logins on postgres", (it) => {
    it.effect(
      `${LIMIT_TRIALS} trials × ${CONCURRENT_LOGINS} concurrent create_session, max ${MAX_SESSIONS}: never above the limit`,
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const peaks: Array<number> = []
          for (let trial = 0; trial < LIMIT_TRIALS; trial++) {
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
          const violations = peaks.filter((n) => n > MAX_SESSIONS).length
          console.log(
            `limit race: ${LIMIT_TRIALS} trials, ${violations} violations, sessions left: ${[...new Set(peaks)]}`,
          )
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

    it.effect(
      "revoke-all racing with logins: no session whose creation committed before the revoke began survives",
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          let committed = 0
          let failures = 0
          for (let trial = 0; trial < TRIALS; trial++) {
            const owner = yield* create_account()
            const stamped: Array<{ id: string; seq: number }> = []
            const login = repo
              .create_session(owner.id, { max_sessions: 100 })
              .pipe(
                Effect.tap(({ session }) =>
                  Effect.sync(() => stamped.push({ id: session.id, seq: ++committed })),
                ),
              )
            let revoke_began = 0
            const revoke = Effect.gen(function* () {
              // start once a few logins have committed
              while (stamped.length < 5) yield* TestClock.withLive(Effect.sleep(1))
              revoke_began = committed
              return yield* repo.revoke_all_for_account(owner.id)
            })
            const outcomes = yield* Effect.all(
              [...Array.from({ length: CONCURRENT_LOGINS }, () => Effect.exit(login)), Effect.exit(revoke)],
              { concurrency: "unbounded" },
            )
            failures += outcomes.filter((exit: Exit.Exit<unknown, unknown>) => Exit.isFailure(exit)).length
            const left = new Set((yield* session_rows(owner.id)).map((row) => row.id))
            const survivors = stamped.filter((s) => s.seq <= revoke_began && left.has(s.id))
            assert.deepStrictEqual(survivors, [], `trial ${trial}: sessions survived a later revoke-all`)
          }
          console.log(`revoke-all race: ${TRIALS} trials, ${failures} failed calls`)
          assert.strictEqual(failures, 0)
        }),
    )

    it.effect("a touch never brings back a revoked session", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const touches = yield* SessionTouches
        for (let trial = 0; trial < TRIALS; trial++) {
          const owner = yield* create_account()
          const { token, session } = yield* repo.create_session(owner.id)
          yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
          yield* Effect.all(
            [
              ...Array.from({ length: 10 }, () => repo.validate(token)),
              repo.revoke_all_for_account(owner.id),
              ...Array.from({ length: 10 }, () => touches.touch(session.id)),
            ],
            { concurrency: "unbounded" },
          )
          yield* touches.await_idle
          assert.strictEqual((yield* session_rows(owner.id)).length, 0)
          assert.isTrue(Option.isNone(yield* repo.validate(token)))
        }
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

  // the same race over an application's own users table (serial ids): the lock is on its row
  const [serial_users] = app_accounts
  layer(with_repo(postgres_backend.database(), apply_app_schema))(
    "the per-account limit over the app's own users table on postgres",
    (it) => {
      it.effect(
        `${APP_TRIALS} trials × ${CONCURRENT_LOGINS} concurrent create_session on the app's users, max ${MAX_SESSIONS}: never above the limit`,
        () =>
          Effect.gen(function* () {
            const accounts = serial_users as AppAccounts
            const repo = yield* any_key_repo
            const counts: Array<number> = []
            for (let trial = 0; trial < APP_TRIALS; trial++) {
              const owner = yield* accounts.create(`race-${trial}-${crypto.randomUUID()}@example.com`)
              yield* Effect.all(
                Array.from({ length: CONCURRENT_LOGINS }, () =>
                  repo.create_session(owner, { max_sessions: MAX_SESSIONS }),
                ),
                { concurrency: "unbounded" },
              )
              counts.push((yield* repo.list_for_account(owner, { limit: 100 })).length)
            }
            console.log(`limit race (app's users table): sessions left ${[...new Set(counts)]}`)
            assert.deepStrictEqual(
              counts.filter((n) => n !== MAX_SESSIONS),
              [],
            )
          }).pipe(on_table(user_session)),
      )
    },
  )
} else {
  describe("the per-account limit under concurrent logins", () => {
    report_skipped_postgres("limit race")
  })
}
