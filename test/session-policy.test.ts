import { assert, layer } from "@effect/vitest"
import { eq } from "drizzle-orm"
import { Effect, Layer, Metric, Option, Redacted } from "effect"
import { HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { session_rejections } from "../src/http/session.ts"
import {
  auth_session,
  hash_session_token,
  layer_session_policy,
  make_session_policy,
  query_session_touch,
  require_fresh_session,
  SESSION_POLICY_PRESETS,
  SessionRepo,
  SessionTouches,
  type TokenInput,
} from "../src/index.ts"
import { backends, report_skipped_postgres, under_policy } from "./support/backends.ts"
import {
  create_account,
  install_write_counter,
  now_ms,
  on_db,
  session_row,
  write_count,
} from "./support/fixtures.ts"
import { request_with, session_cookie } from "./support/requests.ts"

// Absolute and idle timeouts, rejection reasons and freshness, driven by the
// TestClock on both backends.

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

const under = under_policy

/** A request of the session's user: validated, and its touch (if one was due) written. */
const use = (token: TokenInput) =>
  Effect.gen(function* () {
    const authenticated = yield* (yield* SessionRepo).authenticate(token)
    yield* (yield* SessionTouches).await_idle
    return authenticated
  })

/** Why the token is turned away; fails the test when it is accepted. */
const rejection = (token: TokenInput) =>
  SessionRepo.use((repo) => Effect.flip(repo.authenticate(token))).pipe(Effect.map((error) => error.reason))

const new_session = Effect.gen(function* () {
  const owner = yield* create_account()
  const created = yield* (yield* SessionRepo).create_session(owner.id)
  return { ...created, owner }
})

const ok = Effect.succeed(HttpServerResponse.jsonUnsafe({ ok: true }))

const rejections_counted = Effect.map(Metric.value(session_rejections), (state) => state.occurrences)

const strict_presets = [
  ["aal2", SESSION_POLICY_PRESETS.aal2, 24 * HOUR, HOUR],
  ["aal3", SESSION_POLICY_PRESETS.aal3, 12 * HOUR, 15 * MINUTE],
] as const

for (const backend of backends) {
  layer(backend.layer)(`session policy on ${backend.name}`, (it) => {
    for (const [name, policy, absolute, idle] of strict_presets) {
      it.effect(
        `${name}: ${absolute / HOUR} h + 1 ms after sign-in the session is invalid, however recently used`,
        () =>
          Effect.gen(function* () {
            const { token } = yield* new_session
            // used every half idle timeout: never idle
            for (let elapsed = 0; elapsed + idle / 2 < absolute; elapsed += idle / 2) {
              yield* TestClock.adjust(idle / 2)
              yield* use(token)
            }
            const { session } = yield* use(token)
            assert.strictEqual(
              session.absolute_expires_at.getTime() - session.authenticated_at.getTime(),
              absolute,
            )
            // the cookie's expiry never passed the absolute one
            assert.isAtMost(session.expires_at.getTime(), session.absolute_expires_at.getTime())
            yield* TestClock.setTime(session.absolute_expires_at.getTime() - 1)
            yield* use(token)
            yield* TestClock.adjust(2)
            assert.strictEqual(yield* rejection(token), "absolute")
          }).pipe(under(policy)),
      )

      it.effect(`${name}: idle for ${idle / MINUTE} min + 1 ms is invalid; one used within it is kept`, () =>
        Effect.gen(function* () {
          const unused = yield* new_session
          const used = yield* new_session
          yield* TestClock.adjust(idle - MINUTE)
          yield* use(used.token)
          yield* TestClock.adjust(MINUTE + 1)
          // no write brings the idle session back: not a touch, not a re-authentication
          const before = yield* session_row(unused.session.id)
          assert.isDefined(before)
          assert.isUndefined(yield* query_session_touch(unused.session.id))
          const repo = yield* SessionRepo
          assert.strictEqual((yield* Effect.flip(repo.reauthenticate(unused.token))).reason, "idle")
          assert.deepStrictEqual(yield* session_row(unused.session.id), before)
          // nor is it listed or counted as a device
          assert.deepStrictEqual(yield* repo.list_for_account(unused.owner.id), [])
          // the validation that finds it ended says why, and deletes it (telling its end once)
          assert.strictEqual(yield* rejection(unused.token), "idle")
          yield* SessionTouches.use((touches) => touches.await_idle)
          assert.isUndefined(yield* session_row(unused.session.id))
          assert.strictEqual(yield* rejection(unused.token), "unknown")
          yield* use(used.token)
          yield* TestClock.adjust(idle - MINUTE - 2)
          yield* use(used.token)
        }).pipe(under(policy)),
      )
    }

    it.effect("aal3: sessions in use every 10 s stay valid, and write at most once per touch interval", () =>
      Effect.gen(function* () {
        yield* install_write_counter
        const { token, session } = yield* new_session
        const repo = yield* SessionRepo
        for (let round = 0; round < 90; round++) {
          yield* TestClock.adjust(10 * SECOND)
          yield* Effect.all(
            Array.from({ length: 20 }, () => repo.authenticate(token)),
            { concurrency: "unbounded" },
          )
          yield* (yield* SessionTouches).await_idle
        }
        // 15 minutes: one write per elapsed minute at most
        assert.isAtMost(yield* write_count(session.id), 15)
        assert.isAtLeast(yield* write_count(session.id), 14)
      }).pipe(under(SESSION_POLICY_PRESETS.aal3)),
    )

    it.effect(
      "default: a daily user signs in again 90 days after sign-in; the cookie ends with the session",
      () =>
        Effect.gen(function* () {
          const { token, session } = yield* new_session
          const absolute = session.authenticated_at.getTime() + 90 * DAY
          assert.strictEqual(session.absolute_expires_at.getTime(), absolute)
          let last_cookie: { max_age: string; at: number } | undefined
          while ((yield* now_ms) + 23 * HOUR < absolute) {
            yield* TestClock.adjust(23 * HOUR)
            const response = yield* request_with(Redacted.value(token), ok)
            assert.strictEqual(response.status, 200)
            // a day passes: the request's background touch has long been written
            yield* (yield* SessionTouches).await_idle
            const cookie = session_cookie(response)
            if (cookie !== undefined)
              last_cookie = { max_age: String(cookie.options?.maxAge), at: yield* now_ms }
          }
          // the last extension reached the absolute expiry, not 30 days on, and the cookie says so
          assert.strictEqual((yield* session_row(session.id))?.expires_at.getTime(), absolute)
          assert.strictEqual(
            last_cookie?.max_age,
            `${Math.floor((absolute - (last_cookie?.at ?? 0)) / 1000)} seconds`,
          )
          // capped: later requests extend nothing (no write per request in the last day)
          yield* install_write_counter
          const writes = yield* write_count(session.id)
          for (let request = 0; request < 5; request++) {
            yield* TestClock.adjust(10 * SECOND)
            assert.isFalse((yield* use(token)).extended)
          }
          assert.isAtMost((yield* write_count(session.id)) - writes, 1)
          yield* TestClock.setTime(absolute + 1)
          const counted = (yield* rejections_counted).get("absolute") ?? 0
          const response = yield* request_with(Redacted.value(token), ok)
          assert.strictEqual(response.status, 401)
          assert.strictEqual((yield* rejections_counted).get("absolute"), counted + 1)
        }),
    )

    it.effect("default: no idle timeout; unused for 30 days the session has expired", () =>
      Effect.gen(function* () {
        const { token } = yield* new_session
        yield* TestClock.adjust(29 * DAY)
        yield* use(token)
        const { token: unused } = yield* new_session
        yield* TestClock.adjust(30 * DAY + 1)
        assert.strictEqual(yield* rejection(unused), "expired")
      }),
    )

    for (const [name, policy] of Object.entries(SESSION_POLICY_PRESETS)) {
      it.effect(`${name}: a session signed in 100 days ago and kept alive by use answers 401`, () =>
        Effect.gen(function* () {
          const { token, session } = yield* new_session
          yield* TestClock.adjust(100 * DAY)
          // what the sliding window alone allowed: seen just now, an hour left
          const now = yield* now_ms
          yield* on_db((db) =>
            db
              .update(auth_session)
              .set({ last_seen_at: new Date(now), expires_at: new Date(now + HOUR) })
              .where(eq(auth_session.id, session.id)),
          )
          const counted = (yield* rejections_counted).get("absolute") ?? 0
          const response = yield* request_with(Redacted.value(token), ok)
          assert.strictEqual(response.status, 401)
          assert.strictEqual(session_cookie(response)?.value, "")
          assert.strictEqual((yield* rejections_counted).get("absolute"), counted + 1)
          // and nothing extended it meanwhile
          assert.strictEqual((yield* session_row(session.id))?.expires_at.getTime(), now + HOUR)
        }).pipe(under(policy)),
      )
    }

    it.effect("every reason: malformed, unknown, revoked (unknown), expired", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        assert.strictEqual(yield* rejection("not a token"), "malformed")
        assert.strictEqual(yield* rejection("A".repeat(43)), "unknown")
        const { token } = yield* new_session
        yield* repo.revoke(token)
        assert.strictEqual(yield* rejection(token), "unknown")
        const { token: old } = yield* new_session
        yield* TestClock.adjust(30 * DAY)
        assert.strictEqual(yield* rejection(old), "expired")
        assert.isTrue(Option.isNone(yield* repo.validate(old)))
      }),
    )

    it.effect("ended sessions neither list nor count against the limit; the limit evicts them first", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const second = yield* repo.create_session(owner.id, { max_sessions: 3 })
        const third = yield* repo.create_session(owner.id, { max_sessions: 3 })
        yield* TestClock.adjust(MINUTE)
        // the newest by creation: were it counted, the limit would evict an older, live one
        const first = yield* repo.create_session(owner.id, { max_sessions: 3 })
        yield* TestClock.adjust(49 * MINUTE)
        yield* use(second.token)
        yield* use(third.token)
        yield* TestClock.adjust(12 * MINUTE)
        // the first is idle now (61 minutes unused), the others were used 12 minutes ago
        const listed = yield* repo.list_for_account(owner.id)
        assert.sameMembers(
          listed.map((s) => s.id),
          [second.session.id, third.session.id],
        )
        const fourth = yield* repo.create_session(owner.id, { max_sessions: 3 })
        assert.isUndefined(yield* session_row(first.session.id), "the idle session was not evicted")
        assert.sameMembers(
          (yield* repo.list_for_account(owner.id)).map((s) => s.id),
          [second.session.id, third.session.id, fourth.session.id],
        )
        const all = yield* repo.list_all_active({ limit: 1000 })
        assert.notInclude(
          all.map((s) => s.id),
          first.session.id,
        )
      }).pipe(under(SESSION_POLICY_PRESETS.aal2)),
    )

    it.effect("freshness: fresh after sign-in, stale later, fresh again after reauthenticate", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const { token, session } = yield* new_session
        yield* require_fresh_session(session, 10 * MINUTE)
        yield* TestClock.adjust(10 * MINUTE + 1)
        const { session: later } = yield* use(token)
        const stale = yield* Effect.flip(require_fresh_session(later, 10 * MINUTE))
        assert.strictEqual(stale._tag, "SessionNotFresh")
        assert.strictEqual(stale.max_age_ms, 10 * MINUTE)
        const renewed = yield* repo.reauthenticate(token)
        assert.isTrue(renewed.extended)
        assert.strictEqual(renewed.session.authenticated_at.getTime(), yield* now_ms)
        yield* require_fresh_session(renewed.session, 10 * MINUTE)
        // what the next request reads
        yield* require_fresh_session((yield* use(token)).session, 10 * MINUTE)
        assert.strictEqual(
          (yield* Effect.flip(repo.reauthenticate(hash_session_token(Redacted.value(token))))).reason,
          "malformed",
        )
      }),
    )

    it.effect("a policy given to the repo's layer with Layer.provide is the one it follows", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const strict = SessionRepo.layer(auth_session).pipe(
          Layer.provide(layer_session_policy({ max_sessions: 1 })),
        )
        const kept = yield* Effect.gen(function* () {
          const repo = yield* SessionRepo
          for (let login = 0; login < 3; login++) yield* repo.create_session(owner.id)
          return yield* repo.list_for_account(owner.id)
        }).pipe(Effect.provide(strict))
        assert.lengthOf(kept, 1)
      }),
    )

    it.effect(
      "tightening the policy reaches existing sessions: default → aal2 ends those older than 24 h",
      () =>
        Effect.gen(function* () {
          // issued under the default: 90 days stored as their absolute end
          const old = yield* new_session
          yield* TestClock.adjust(20 * HOUR)
          const recent = yield* new_session
          yield* TestClock.adjust(4 * HOUR)
          yield* use(old.token)
          yield* use(recent.token)
          // the app restarts under aal2, 24 h after the first sign-in
          yield* Effect.gen(function* () {
            assert.strictEqual(yield* rejection(old.token), "absolute")
            const repo = yield* SessionRepo
            assert.deepStrictEqual(yield* repo.list_for_account(old.owner.id), [])
            assert.lengthOf(yield* repo.list_for_account(recent.owner.id), 1)
            // no touch revives the old one
            assert.isUndefined(yield* query_session_touch(old.session.id))
            // the recent one's cookie is cut to its new end, once
            const cut = yield* use(recent.token)
            assert.isTrue(cut.extended)
            const end = recent.session.created_at.getTime() + 24 * HOUR
            assert.strictEqual(cut.session.expires_at.getTime(), end)
            assert.isFalse((yield* use(recent.token)).extended)
            // used every half hour (within aal2's idle hour), it still ends 24 h after its sign-in
            while ((yield* now_ms) + 30 * MINUTE < end) {
              yield* TestClock.adjust(30 * MINUTE)
              yield* use(recent.token)
            }
            yield* TestClock.setTime(end)
            assert.strictEqual(yield* rejection(recent.token), "absolute")
          }).pipe(under(SESSION_POLICY_PRESETS.aal2))
        }),
    )

    it.effect("re-authentication restarts the absolute lifetime", () =>
      Effect.gen(function* () {
        const policy = yield* make_session_policy({ absolute_lifetime: "10 minutes" })
        yield* Effect.gen(function* () {
          const repo = yield* SessionRepo
          const { token } = yield* new_session
          yield* TestClock.adjust(9 * MINUTE)
          const renewed = yield* repo.reauthenticate(token)
          assert.strictEqual(renewed.session.absolute_expires_at.getTime(), (yield* now_ms) + 10 * MINUTE)
          assert.strictEqual(renewed.session.expires_at.getTime(), (yield* now_ms) + 10 * MINUTE)
          yield* TestClock.adjust(9 * MINUTE)
          yield* use(token)
          yield* TestClock.adjust(MINUTE)
          // re-authentication cannot revive it (asked first: the validation that finds it ended deletes it)
          assert.strictEqual((yield* Effect.flip(repo.reauthenticate(token))).reason, "absolute")
          assert.strictEqual(yield* rejection(token), "absolute")
        }).pipe(under(policy))
      }),
    )
  })
}

report_skipped_postgres("session policy")
