import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted } from "effect"
import type pg from "pg"
import {
  auth_session,
  Database,
  DbError,
  layer_postgres,
  layer_session_policy,
  SessionRepo,
} from "../src/index.ts"
import { admin_client } from "./support/admin.ts"
import { fresh_postgres_database, report_skipped_postgres, server_url } from "./support/backends.ts"

// writes_wait_for_standby on a server with no standby: every write commits
// there and then fails, as not_replicated with commit_unknown, once the wait
// is up (it committed, and a failover could undo it); reads never wait. That
// a standby's confirmation lets writes return is shown on the pg_auto_failover
// formation (test/ha-failover.test.ts, whose service runs with it).

const WAIT_SECONDS = 0.3

/** The repo on `url`, its writes waiting for a standby or not, as a built context. */
const repo_on = (url: string, writes_wait_for_standby: boolean, pool_size = 2) =>
  Layer.build(
    SessionRepo.layer(auth_session).pipe(
      Layer.provide(layer_session_policy()),
      Layer.provideMerge(
        layer_postgres({
          url: Redacted.make(url),
          pool_size,
          writes_wait_for_standby,
          standby_wait_seconds: WAIT_SECONDS,
        }),
      ),
    ),
  )

/** A fresh database of the server and an admin client on it, both gone with the scope. */
const fresh_database = Effect.gen(function* () {
  const url = yield* fresh_postgres_database(server_url as string)
  const admin = yield* Effect.acquireRelease(
    Effect.promise(() => admin_client(url)),
    (client) => Effect.promise(() => client.end()),
  )
  return { url, admin }
})

/** The account id of a new account. */
const new_account = (admin: pg.Client) =>
  Effect.promise(async () => {
    const { rows } = await admin.query<{ id: unknown }>(
      "INSERT INTO account (username) VALUES (gen_random_uuid()::text) RETURNING id",
    )
    return String(rows[0]?.id)
  })

const expect_not_replicated = (error: unknown, started: number) => {
  assert.instanceOf(error, DbError)
  assert.strictEqual(error.reason, "not_replicated")
  assert.isTrue(error.commit_unknown)
  assert.isTrue(error.is_retryable)
  assert.match(error.message, /no standby confirmed the write within/)
  // it waited for a standby, and no longer than it was told to
  const waited = performance.now() - started
  assert.isAtLeast(waited, WAIT_SECONDS * 1000 - 5)
  assert.isBelow(waited, WAIT_SECONDS * 1000 + 2000)
}

if (server_url !== undefined) {
  describe("writes that wait for a standby, on a server with none", () => {
    it.live(
      "a create (a transaction) and a revoke (one statement) commit, then fail as not_replicated; a validation does not wait",
      () =>
        Effect.gen(function* () {
          const { url, admin } = yield* fresh_database
          const plain = yield* repo_on(url, false)
          const waiting = yield* repo_on(url, true)
          yield* Effect.provideContext(
            Database.use((database) => database.migrate),
            plain,
          )
          const account_id = yield* new_account(admin)
          // a session made without waiting, to revoke with
          const { token } = yield* Effect.provideContext(
            SessionRepo.use((repo) => repo.create_session(account_id as never)),
            plain,
          )
          yield* Effect.gen(function* () {
            const repo = yield* SessionRepo
            let started = performance.now()
            expect_not_replicated(yield* Effect.flip(repo.create_session(account_id as never)), started)
            // committed on the primary: both sessions are there
            const { rows } = yield* Effect.promise(() =>
              admin.query<{ id: string }>("SELECT id FROM auth_session WHERE account_id = $1", [account_id]),
            )
            assert.lengthOf(rows, 2)

            started = performance.now()
            assert.isTrue(Option.isSome(yield* repo.validate(token)))
            assert.isBelow(performance.now() - started, WAIT_SECONDS * 1000, "a read waited for a standby")

            started = performance.now()
            expect_not_replicated((yield* Effect.flip(repo.revoke(token))) as DbError, started)
            assert.isTrue(Option.isNone(yield* repo.validate(token)), "the revoke committed on the primary")
          }).pipe(Effect.provideContext(waiting))
        }).pipe(Effect.scoped),
      30_000,
    )

    it.live("a touch does not wait: it would hold the connection validations need", () =>
      Effect.gen(function* () {
        const { url, admin } = yield* fresh_database
        const plain = yield* repo_on(url, false)
        // one connection: a touch holding it for the wait would hold up the next validation
        const waiting = yield* repo_on(url, true, 1)
        yield* Effect.provideContext(
          Database.use((database) => database.migrate),
          plain,
        )
        const account_id = yield* new_account(admin)
        const { token, session } = yield* Effect.provideContext(
          SessionRepo.use((repo) => repo.create_session(account_id as never)),
          plain,
        )
        const last_seen = Effect.promise(async () => {
          const { rows } = await admin.query<{ at: Date }>(
            "SELECT last_seen_at AS at FROM auth_session WHERE id = $1",
            [session.id],
          )
          return rows[0]?.at.getTime() ?? 0
        })
        yield* Effect.promise(() =>
          admin.query("UPDATE auth_session SET last_seen_at = now() - interval '10 minutes' WHERE id = $1", [
            session.id,
          ]),
        )
        const before = yield* last_seen
        yield* Effect.gen(function* () {
          const repo = yield* SessionRepo
          // due for a touch: the validation starts one
          assert.isTrue(Option.isSome(yield* repo.validate(token)))
          // the touch has its statement sent by now
          yield* Effect.sleep(30)
          const started = performance.now()
          assert.isTrue(Option.isSome(yield* repo.validate(token)))
          // held by a touch's wait, it would come back at the end of that wait
          assert.isBelow(
            performance.now() - started,
            (WAIT_SECONDS * 1000) / 2,
            "a touch held the connection",
          )
        }).pipe(Effect.provideContext(waiting))
        // and it was written
        for (let tries = 0; (yield* last_seen) === before && tries < 100; tries++) yield* Effect.sleep(10)
        assert.isAbove(yield* last_seen, before)
      }).pipe(Effect.scoped),
    )

    it.live(
      "a role that cannot see pg_stat_replication's positions is told to get pg_monitor, without waiting",
      () =>
        Effect.gen(function* () {
          const role = `esr_plain_${process.pid}`
          const server = yield* Effect.acquireRelease(
            Effect.promise(() => admin_client(server_url as string)),
            (client) => Effect.promise(() => client.end()),
          )
          yield* Effect.acquireRelease(
            Effect.promise(() => server.query(`DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role} LOGIN`)),
            () => Effect.promise(() => server.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined)),
          )
          // its database goes first (scopes close last in, first out), and the role with it can be dropped
          const { url, admin } = yield* fresh_database
          yield* Effect.promise(() =>
            admin.query(
              `GRANT ALL ON SCHEMA public TO ${role}; GRANT CREATE ON DATABASE ${new URL(url).pathname.slice(1)} TO ${role}`,
            ),
          )
          const as_role = new URL(url)
          as_role.username = role
          const waiting = yield* repo_on(as_role.toString(), true)
          yield* Effect.gen(function* () {
            yield* Database.use((database) => database.migrate)
            const account_id = yield* new_account(admin)
            const started = performance.now()
            const error = yield* Effect.flip(
              SessionRepo.use((repo) => repo.create_session(account_id as never)),
            )
            assert.strictEqual((error as DbError).reason, "not_replicated")
            assert.match(error.message, /grant it pg_monitor/)
            assert.isBelow(performance.now() - started, WAIT_SECONDS * 1000)
          }).pipe(Effect.provideContext(waiting))
        }).pipe(Effect.scoped),
    )
  })
} else {
  describe("writes that wait for a standby", () => {
    report_skipped_postgres("writes that wait for a standby")
  })
}
