import { assert, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Effect, Option } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import {
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  Database,
  query_session_enforce_limit,
  SessionTouches,
} from "../src/index.ts"
import { type AppAccounts, app_accounts, apply_app_schema, user_session } from "./support/app-schema.ts"
import {
  any_key_repo,
  backends,
  on_table,
  report_skipped_postgres,
  through_pgbouncer,
  with_repo,
} from "./support/backends.ts"
import { on_db, statements_of } from "./support/fixtures.ts"

// Sessions over the application's own account tables (test/support/app-schema.ts):
// created by drizzle-kit from session_table(...), keyed by serial integers,
// uuids, text and bigints. The repo and the query layer run on the app's table.

/** Runs `effect` with the repo (and the query layer) on `accounts`' session table. */
const on_accounts = <A, E, R>(accounts: AppAccounts, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(on_table(accounts.sessions))

const rows_of = <Row>(query: ReturnType<typeof sql>) =>
  on_db((db) => db.execute(query)).pipe(Effect.map((result) => (result as { rows: Array<Row> }).rows))

const email = () => `${crypto.randomUUID()}@example.com`

for (const backend of backends) {
  layer(with_repo(backend.database(), apply_app_schema))(
    `sessions over the app's own tables on ${backend.name}`,
    (it) => {
      for (const accounts of app_accounts) {
        it.effect(
          `${accounts.kind} ids: create, validate, list with the label, revoke; ids keep their type`,
          () =>
            on_accounts(
              accounts,
              Effect.gen(function* () {
                const repo = yield* any_key_repo
                const address = email()
                const owner = yield* accounts.create(address)
                const { token, session } = yield* repo.create_session(owner)
                assert.strictEqual(session.account_id, owner)
                assert.strictEqual(typeof session.account_id, typeof owner)
                const validated = yield* repo.validate(token)
                assert.isTrue(Option.isSome(validated))
                assert.strictEqual(Option.getOrThrow(validated).account_id, owner)
                const listed = yield* repo.list_for_account(owner)
                assert.deepStrictEqual(
                  listed.map((s) => s.id),
                  [session.id],
                )
                assert.strictEqual(listed[0]?.account_id, owner)
                const all = yield* repo.list_all_active()
                const mine = all.find((s) => s.id === session.id)
                // the admin list shows the label column the app chose
                assert.strictEqual(mine?.username, address)
                assert.strictEqual(mine?.account_id, owner)
                assert.isTrue(yield* repo.revoke_for_account(session.id, owner))
                assert.isTrue(Option.isNone(yield* repo.validate(token)))
              }),
            ),
        )

        it.effect(
          `${accounts.kind} ids: the limit evicts the oldest and deleting the user deletes its sessions`,
          () =>
            on_accounts(
              accounts,
              Effect.gen(function* () {
                const repo = yield* any_key_repo
                const owner = yield* accounts.create(email())
                const created = []
                for (let i = 0; i < 4; i++) {
                  created.push(yield* repo.create_session(owner, { max_sessions: 3 }))
                  yield* TestClock.adjust(1)
                }
                const kept = yield* repo.list_for_account(owner)
                assert.deepStrictEqual(
                  kept.map((s) => s.id),
                  created
                    .slice(1)
                    .reverse()
                    .map((c) => c.session.id),
                )
                // the user row goes: its sessions go with it (ON DELETE CASCADE)
                yield* accounts.remove(owner)
                assert.deepStrictEqual(yield* repo.list_for_account(owner), [])
                for (const { token } of created) assert.isTrue(Option.isNone(yield* repo.validate(token)))
              }),
            ),
        )

        it.effect(
          `${accounts.kind} ids: a wrong type is InvalidInput without a statement; a missing one AccountNotFound`,
          () =>
            on_accounts(
              accounts,
              Effect.gen(function* () {
                const repo = yield* any_key_repo
                const { result, statements } = yield* statements_of(
                  Effect.all([
                    Effect.flip(repo.create_session(accounts.wrong_type as string)),
                    Effect.flip(repo.list_for_account(accounts.wrong_type as string)),
                    Effect.flip(repo.revoke_all_for_account(accounts.wrong_type as string)),
                  ]),
                )
                for (const error of result) assert.strictEqual(error._tag, "InvalidInput")
                assert.strictEqual(statements.length, 0)
                const missing = yield* Effect.flip(repo.create_session(accounts.missing))
                assert.strictEqual(missing._tag, "AccountNotFound")
              }),
            ),
        )
      }

      const hostile_id = fc.oneof(
        fc.double(),
        fc.integer(),
        fc.bigInt(),
        fc.string({ maxLength: 20 }),
        fc.string({ unit: "binary", maxLength: 20 }),
        fc.constantFrom(
          2 ** 31,
          -(2 ** 31) - 1,
          2 ** 53,
          Number.NaN,
          2n ** 63n,
          "1",
          "",
          "\u0000",
          "\uD800",
          "x".repeat(16),
          "x".repeat(17),
          "x".repeat(1025),
          "00000000-0000-4000-8000-00000000000G",
          null,
          undefined,
          {},
          [1],
        ),
      )
      for (const accounts of app_accounts)
        it.effect(
          `${accounts.kind} ids: 300 hostile ids × 4 calls: InvalidInput or a normal answer, never a defect`,
          () =>
            on_accounts(
              accounts,
              Effect.gen(function* () {
                const repo = yield* any_key_repo
                for (const input of fc.sample(hostile_id, { numRuns: 300, seed: 3 })) {
                  const outcomes = yield* Effect.all(
                    [
                      Effect.exit(repo.create_session(input as number)),
                      Effect.exit(repo.list_for_account(input as number)),
                      Effect.exit(repo.revoke_all_for_account(input as number)),
                      Effect.exit(repo.revoke_for_account("0".repeat(64), input as number)),
                    ],
                    { concurrency: 1 },
                  )
                  for (const exit of outcomes) {
                    if (exit._tag === "Success") continue
                    const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail") as
                      | { error: { _tag: string } }
                      | undefined
                    assert.isDefined(failure, `a defect for ${String(input)}`)
                    assert.include(["InvalidInput", "AccountNotFound"], failure?.error._tag, String(input))
                  }
                }
              }),
            ),
        )

      it.effect("the limit query locks the app's account row, inside a transaction only", () =>
        on_accounts(
          app_accounts[0] as AppAccounts,
          Effect.gen(function* () {
            const owner = yield* (app_accounts[0] as AppAccounts).create(email())
            const database = yield* Database
            const { statements } = yield* statements_of(
              // a serial key's number, where this program's registered ids are strings
              database.transaction(query_session_enforce_limit(owner as unknown as string, 5)),
            )
            assert.isTrue(
              statements.some((text) =>
                /from "users" where "users"\."id" = \$1 for no key update/.test(text),
              ),
              statements.join("\n"),
            )
          }),
        ),
      )

      if (backend.name === "postgres" && !through_pgbouncer)
        it.effect(
          "the app table's statements are named prepared statements, apart from the standalone ones",
          () =>
            on_accounts(
              app_accounts[0] as AppAccounts,
              Effect.gen(function* () {
                const repo = yield* any_key_repo
                const owner = yield* (app_accounts[0] as AppAccounts).create(email())
                const { token } = yield* repo.create_session(owner)
                yield* repo.validate(token)
                const named = yield* rows_of<{ name: string; statement: string }>(
                  sql`SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'session_get%'`,
                )
                assert.isTrue(named.some((row) => row.statement.includes('"user_session"')))
              }),
            ),
        )

      it.effect("touches stay within the write budget on the app's table", () =>
        on_accounts(
          app_accounts[0] as AppAccounts,
          Effect.gen(function* () {
            const repo = yield* any_key_repo
            const touches = yield* SessionTouches
            const owner = yield* (app_accounts[0] as AppAccounts).create(email())
            const { token, session } = yield* repo.create_session(owner)
            const seen = () =>
              rows_of<{ last_seen_at: string }>(
                sql`SELECT last_seen_at::text FROM ${user_session} WHERE id = ${session.id}`,
              ).pipe(Effect.map((rows) => rows[0]?.last_seen_at))
            const before = yield* seen()
            yield* repo.validate(token)
            yield* touches.await_idle
            assert.strictEqual(yield* seen(), before)
            yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
            yield* repo.validate(token)
            yield* touches.await_idle
            assert.notStrictEqual(yield* seen(), before)
          }),
        ),
      )
    },
  )
}

report_skipped_postgres("sessions over the app's own tables")
