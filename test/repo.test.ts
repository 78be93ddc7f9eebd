import { assert, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Effect, Fiber, Logger, Option, Redacted } from "effect"
import { TestClock } from "effect/testing"
import {
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_MAX_PER_ACCOUNT,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  account,
  auth_session,
  Database,
  hash_prefix,
  hash_session_token,
  query_create_session,
  SessionRepo,
  SessionTouches,
} from "../src/index.ts"
import { backends, on_table, report_skipped_postgres } from "./support/backends.ts"
import {
  count_matching,
  create_account,
  hold_session_locks,
  install_write_counter,
  missing_account_id,
  now_ms,
  on_db,
  SESSION_UPDATE,
  session_row,
  session_rows,
  statements_of,
  until_waiting_on_locks,
  with_refused,
  write_count,
} from "./support/fixtures.ts"

const SECOND = 1000

for (const backend of backends) {
  layer(backend.layer)(`SessionRepo on ${backend.name}`, (it) => {
    it.effect("create_session returns a redacted 43-char token; the database holds only its hash", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token, session } = yield* repo.create_session(owner.id)
        const raw = Redacted.value(token)
        assert.match(raw, /^[A-Za-z0-9_-]{43}$/)
        assert.notInclude(String(token), raw)
        assert.strictEqual(session.id, hash_session_token(raw))
        assert.strictEqual(session.expires_at.getTime(), (yield* now_ms) + AUTH_SESSION_LIFETIME_MS)
        const dump = yield* on_db((db) =>
          db.execute(sql`SELECT row_to_json(s)::text AS row FROM auth_session s`),
        )
        assert.notInclude(JSON.stringify(dump), raw)
        assert.include(JSON.stringify(dump), session.id)
      }),
    )

    it.effect("create_session keeps the default 5 sessions: the 6th evicts the oldest", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const tokens = []
        for (let i = 0; i <= AUTH_SESSION_MAX_PER_ACCOUNT; i++) {
          tokens.push((yield* repo.create_session(owner.id)).token)
          yield* TestClock.adjust(SECOND)
        }
        assert.isTrue(Option.isNone(yield* repo.validate(tokens[0] as Redacted.Redacted<string>)))
        for (const token of tokens.slice(1)) assert.isTrue(Option.isSome(yield* repo.validate(token)))
        assert.strictEqual((yield* session_rows(owner.id)).length, AUTH_SESSION_MAX_PER_ACCOUNT)
      }),
    )

    it.effect("the new session always survives its own creation, even when creation times tie", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        // the TestClock stands still: every session has the same created_at
        for (let i = 0; i < 30; i++) {
          const { token } = yield* repo.create_session(owner.id, { max_sessions: 3 })
          assert.isTrue(Option.isSome(yield* repo.validate(token)), `creation ${i} evicted its own session`)
        }
        assert.strictEqual((yield* session_rows(owner.id)).length, 3)
      }),
    )

    it.effect(
      "create_session: a missing account is AccountNotFound, a bad limit InvalidInput, and no row is left",
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const missing = missing_account_id()
          const error = yield* Effect.flip(repo.create_session(missing))
          assert.strictEqual(error._tag, "AccountNotFound")
          assert.strictEqual((yield* session_rows(missing)).length, 0)
          const malformed = yield* statements_of(Effect.flip(repo.create_session("not-a-uuid")))
          assert.strictEqual(malformed.result._tag, "InvalidInput")
          assert.strictEqual(malformed.statements.length, 0)
          const owner = yield* create_account()
          for (const max_sessions of [0, -1, 1.5, Number.NaN]) {
            const invalid = yield* Effect.flip(repo.create_session(owner.id, { max_sessions }))
            assert.strictEqual(invalid._tag, "InvalidInput")
          }
          assert.strictEqual((yield* session_rows(owner.id)).length, 0)
        }),
    )

    it.effect("validate: malformed and unknown tokens are none; a session is valid until expires_at", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const malformed = ["", "short", "x".repeat(44), `${"a".repeat(42)}=`, `${"a".repeat(42)}\u0000`]
        const { result, statements } = yield* statements_of(
          Effect.forEach(malformed, (bad) => repo.validate(bad)),
        )
        assert.isTrue(result.every(Option.isNone))
        assert.strictEqual(statements.length, 0, "a malformed token reached the database")
        assert.isTrue(Option.isNone(yield* repo.validate("A".repeat(43))))
        const { token, session } = yield* repo.create_session(owner.id)
        assert.deepStrictEqual(yield* repo.validate(token), Option.some(session))
        assert.isTrue(Option.isSome(yield* repo.validate(Redacted.value(token))))
        yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - 1)
        assert.isTrue(Option.isSome(yield* repo.validate(token)))
        // that validation extended the session; expire it from the new end
        yield* (yield* SessionTouches).await_idle
        const extended = yield* session_row(session.id)
        yield* TestClock.setTime(extended?.expires_at.getTime() ?? 0)
        assert.isTrue(Option.isNone(yield* repo.validate(token)))
      }),
    )

    it.effect("touch throttling: 100 concurrent validations write once per touch interval", () =>
      Effect.gen(function* () {
        yield* install_write_counter
        const repo = yield* SessionRepo
        const touches = yield* SessionTouches
        const owner = yield* create_account()
        const { token, session } = yield* repo.create_session(owner.id)
        const validate_100 = Effect.all(
          Array.from({ length: 100 }, () => repo.validate(token)),
          { concurrency: "unbounded" },
        ).pipe(Effect.tap(() => touches.await_idle))

        // fresh session: nothing due
        yield* validate_100
        assert.strictEqual(yield* write_count(session.id), 0)

        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
        const due = yield* statements_of(validate_100)
        assert.strictEqual(yield* write_count(session.id), 1)
        assert.strictEqual((yield* session_row(session.id))?.last_seen_at.getTime(), yield* now_ms)
        // the concurrent touches coalesced: one UPDATE sent, not one per request. A
        // second may follow: a read sent before the first touch committed and
        // answered after it ended starts one, whose WHERE then writes nothing.
        assert.isAtMost(count_matching(due.statements, SESSION_UPDATE), 2)

        // inside the interval: one SELECT per validation and nothing else
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS - 1)
        const steady = yield* statements_of(validate_100)
        assert.strictEqual(yield* write_count(session.id), 1)
        assert.strictEqual(steady.statements.length, 100)
        assert.strictEqual(count_matching(steady.statements, /^select /), 100)

        yield* TestClock.adjust(1)
        yield* validate_100
        assert.strictEqual(yield* write_count(session.id), 2)
      }),
    )

    it.effect(
      "sliding expiry: validating inside the extend threshold moves expires_at to now + lifetime",
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const owner = yield* create_account()
          const { token, session } = yield* repo.create_session(owner.id)
          yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS + 1)
          assert.isTrue(Option.isSome(yield* repo.validate(token)))
          yield* (yield* SessionTouches).await_idle
          const row = yield* session_row(session.id)
          assert.strictEqual(row?.expires_at.getTime(), (yield* now_ms) + AUTH_SESSION_LIFETIME_MS)
          // and so it is still valid after the original expiry
          yield* TestClock.setTime(session.expires_at.getTime() + SECOND)
          assert.isTrue(Option.isSome(yield* repo.validate(token)))
        }),
    )

    it.effect("authenticate writes a due extension before returning, once for concurrent requests", () =>
      Effect.gen(function* () {
        yield* install_write_counter
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token, session } = yield* repo.create_session(owner.id)
        // with every pool connection open, the concurrent reads below all go out at once
        const fresh = yield* Effect.all(
          Array.from({ length: 20 }, () => repo.authenticate(token)),
          { concurrency: "unbounded" },
        )
        assert.isFalse(fresh.some((outcome) => outcome.extended))
        yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS + 1)
        const { result, statements } = yield* statements_of(
          Effect.all(
            Array.from({ length: 20 }, () => repo.authenticate(token)),
            { concurrency: "unbounded" },
          ),
        )
        const expected = (yield* now_ms) + AUTH_SESSION_LIFETIME_MS
        // the row already holds what each caller was told: no wait for a background write
        assert.strictEqual((yield* session_row(session.id))?.expires_at.getTime(), expected)
        assert.strictEqual(yield* write_count(session.id), 1)
        // the extensions coalesced; a read sent before the write committed and
        // answered after it may send a second UPDATE, which writes nothing
        assert.isAtMost(count_matching(statements, SESSION_UPDATE), 2)
        // every caller is told the row's expiry (the late reader reads it again);
        // a read that came after the write found it extended already
        const authenticated = result
        assert.isTrue(authenticated.some((outcome) => outcome.extended))
        for (const outcome of authenticated)
          assert.strictEqual(outcome.session.expires_at.getTime(), expected)
        // extended now: the next request has nothing to do
        assert.isFalse((yield* repo.authenticate(token)).extended)
      }),
    )

    it.effect(
      "two instances extend at once: one writes, and both callers are told the row's new expiry",
      () =>
        Effect.gen(function* () {
          yield* install_write_counter
          const repo = yield* SessionRepo
          const owner = yield* create_account()
          const { token, session } = yield* repo.create_session(owner.id)
          yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS + 1)
          // a second app instance: its own repo and touches, the same database
          const on_other_instance = SessionRepo.use((other) => other.authenticate(token)).pipe(
            on_table(auth_session),
          )
          const both = Effect.all([repo.authenticate(token), on_other_instance], { concurrency: "unbounded" })
          // Both must read before either writes (a read after the write is told nothing, rightly).
          // PGlite runs the statements in the order sent; on PostgreSQL the row's lock holds both
          // writes back until both wait on it.
          const [mine, theirs] =
            backend.name === "pglite"
              ? yield* both
              : yield* Effect.gen(function* () {
                  const release = yield* hold_session_locks([session.id])
                  const running = yield* Effect.forkChild(both)
                  yield* until_waiting_on_locks(2)
                  yield* release
                  return yield* Fiber.join(running)
                })
          const expected = (yield* now_ms) + AUTH_SESSION_LIFETIME_MS
          assert.strictEqual(yield* write_count(session.id), 1)
          for (const outcome of [mine, theirs]) {
            assert.isTrue(outcome.extended, "a caller was not told to re-send its cookie")
            assert.strictEqual(outcome.session.expires_at.getTime(), expected)
          }
        }),
    )

    it.effect("revoke_others_for_account keeps only the caller's session", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const other = yield* create_account()
        const mine = yield* repo.create_session(owner.id)
        yield* repo.create_session(owner.id)
        yield* repo.create_session(owner.id)
        const theirs = yield* repo.create_session(other.id)
        assert.strictEqual(yield* repo.revoke_others_for_account(owner.id, mine.session.id), 2)
        assert.deepStrictEqual(
          (yield* session_rows(owner.id)).map((s) => s.id),
          [mine.session.id],
        )
        assert.isTrue(Option.isSome(yield* repo.validate(theirs.token)))
      }),
    )

    it.effect("a failed touch is logged with a hash prefix only and never fails validation", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token, session } = yield* repo.create_session(owner.id)
        const lines: Array<string> = []
        const capture = Logger.map(Logger.formatLogFmt, (line) => {
          lines.push(line)
        })
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
        const validated = yield* with_refused(
          "UPDATE",
          repo.validate(token).pipe(
            Effect.tap(() => SessionTouches.use((touches) => touches.await_idle)),
            Effect.provideService(Logger.CurrentLoggers, new Set([capture])),
          ),
        )
        assert.isTrue(Option.isSome(validated))
        const log = lines.join("\n")
        assert.include(log, "session touch failed")
        assert.include(log, hash_prefix(session.id))
        assert.notInclude(log, session.id)
        assert.notInclude(log, Redacted.value(token))
      }),
    )

    it.effect("revoke logs out by token; malformed tokens are ignored", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token, session } = yield* repo.create_session(owner.id)
        yield* repo.revoke("not a token")
        assert.isDefined(yield* session_row(session.id))
        yield* repo.revoke(token)
        assert.isUndefined(yield* session_row(session.id))
        assert.isTrue(Option.isNone(yield* repo.validate(token)))
      }),
    )

    it.effect("revoke_for_account, revoke_all_for_account and the lists go through the repo", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const stranger = yield* create_account()
        const first = yield* repo.create_session(owner.id)
        yield* TestClock.adjust(SECOND)
        const second = yield* repo.create_session(owner.id)
        assert.deepStrictEqual(
          (yield* repo.list_for_account(owner.id)).map((s) => s.id),
          [second.session.id, first.session.id],
        )
        assert.strictEqual((yield* repo.list_for_account(owner.id, { limit: 1 })).length, 1)
        assert.isFalse(yield* repo.revoke_for_account(first.session.id, stranger.id))
        assert.isTrue(yield* repo.revoke_for_account(first.session.id, owner.id))
        assert.isTrue((yield* repo.list_all_active({ limit: 1000 })).some((s) => s.id === second.session.id))
        assert.strictEqual(yield* repo.revoke_all_for_account(owner.id), 1)
        assert.strictEqual((yield* repo.list_for_account(owner.id)).length, 0)
      }),
    )

    it.effect("deleting an account cascades to its sessions", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token } = yield* repo.create_session(owner.id)
        yield* on_db((db) => db.delete(account).where(sql`${account.id} = ${owner.id}`))
        assert.strictEqual((yield* session_rows(owner.id)).length, 0)
        assert.isTrue(Option.isNone(yield* repo.validate(token)))
      }),
    )

    it.effect("a failure after the insert rolls the whole creation back", () =>
      Effect.gen(function* () {
        const database = yield* Database
        const owner = yield* create_account()
        const hash = hash_session_token("a token that never lands")
        const result = yield* Effect.flip(
          database.transaction(
            query_create_session(hash, owner.id, new Date((yield* now_ms) + SECOND)).pipe(
              Effect.andThen(Effect.fail("injected" as const)),
            ),
          ),
        )
        assert.strictEqual(result, "injected")
        assert.isUndefined(yield* session_row(hash))
      }),
    )
  })
}

report_skipped_postgres("SessionRepo")
