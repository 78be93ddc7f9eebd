import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import {
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  Database,
  DEFAULT_SESSION_POLICY,
  generate_session_token,
  hash_session_token,
  InvalidInput,
  query_create_session,
  query_session_cleanup_expired,
  query_session_enforce_limit,
  query_session_get_valid,
  query_session_list_all_active,
  query_session_list_for_account,
  query_session_revoke_all_for_account,
  query_session_revoke_by_hash,
  query_session_revoke_for_account,
  query_session_touch,
  SessionPolicy,
} from "../src/index.ts"
import { backends, report_skipped_postgres, type TestServices } from "./support/backends.ts"
import {
  create_account,
  delete_statement_count,
  insert_session,
  install_delete_statement_counter,
  missing_account_id,
  now_ms,
  session_row,
  session_rows,
  set_time,
  truncate_all,
} from "./support/fixtures.ts"

const SECOND = 1000
const DAY = 24 * 60 * 60 * SECOND

for (const backend of backends) {
  layer(backend.layer)(`session queries on ${backend.name}`, (it) => {
    it.effect("query_create_session stores the hash as id, with times from the Clock", () =>
      Effect.gen(function* () {
        yield* set_time("2026-03-01T12:00:00.000Z")
        const owner = yield* create_account()
        const token = yield* generate_session_token
        const token_hash = hash_session_token(token)
        const expires_at = new Date("2026-03-31T12:00:00.000Z")
        const created = yield* query_create_session(token_hash, owner.id, expires_at)
        assert.strictEqual(created.id, token_hash)
        assert.strictEqual(created.account_id, owner.id)
        assert.strictEqual(created.created_at.toISOString(), "2026-03-01T12:00:00.000Z")
        assert.strictEqual(created.last_seen_at.toISOString(), "2026-03-01T12:00:00.000Z")
        assert.strictEqual(created.expires_at.toISOString(), expires_at.toISOString())
        const [stored] = yield* session_rows(owner.id)
        assert.deepStrictEqual(stored, created)
        assert.notInclude(JSON.stringify(stored), token)
      }),
    )

    it.effect(
      "query_create_session: missing account is AccountNotFound; duplicate hash is a DbError without the hash",
      () =>
        Effect.gen(function* () {
          const token_hash = hash_session_token(yield* generate_session_token)
          const missing = yield* Effect.flip(
            query_create_session(token_hash, missing_account_id(), new Date(Date.now())),
          )
          assert.strictEqual(missing._tag, "AccountNotFound")
          const owner = yield* create_account()
          yield* query_create_session(token_hash, owner.id, new Date((yield* now_ms) + DAY))
          const duplicate = yield* Effect.flip(
            query_create_session(token_hash, owner.id, new Date((yield* now_ms) + DAY)),
          )
          assert.strictEqual(duplicate._tag, "DbError")
          if (duplicate._tag !== "DbError") return
          assert.strictEqual(duplicate.reason, "unique_violation")
          assert.strictEqual(duplicate.is_retryable, false)
          assert.notInclude(duplicate.message, token_hash)
          assert.notInclude(duplicate.message, token_hash.slice(0, 16))
        }),
    )

    it.effect("query_session_get_valid: valid until expires_at, absent from that instant on", () =>
      Effect.gen(function* () {
        yield* set_time("2026-03-01T00:00:00.000Z")
        const owner = yield* create_account()
        const { session } = yield* insert_session(owner.id, 10 * SECOND)
        assert.deepStrictEqual(yield* query_session_get_valid(session.id), session)
        yield* TestClock.adjust(10 * SECOND - 1)
        assert.isDefined(yield* query_session_get_valid(session.id))
        yield* TestClock.adjust(1)
        assert.strictEqual(yield* now_ms, session.expires_at.getTime())
        assert.isUndefined(yield* query_session_get_valid(session.id))
        assert.isUndefined(yield* query_session_get_valid(hash_session_token("never issued")))
      }),
    )

    it.effect("query_session_touch: no write within the touch interval", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const { session } = yield* insert_session(owner.id)
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS - 1)
        assert.isUndefined(yield* query_session_touch(session.id))
        assert.deepStrictEqual(yield* session_row(session.id), session)
      }),
    )

    it.effect("query_session_touch: after the interval writes last_seen_at only", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const { session } = yield* insert_session(owner.id)
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
        assert.isDefined(yield* query_session_touch(session.id))
        const row = yield* session_row(session.id)
        assert.strictEqual(row?.last_seen_at.getTime(), yield* now_ms)
        assert.strictEqual(row?.expires_at.getTime(), session.expires_at.getTime())
        // written once: a second touch at the same instant is a no-op
        assert.isUndefined(yield* query_session_touch(session.id))
      }),
    )

    it.effect("query_session_touch: extends to now + lifetime once less than the threshold remains", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const { session } = yield* insert_session(owner.id)
        // exactly the threshold left: not yet
        yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS)
        assert.isDefined(yield* query_session_touch(session.id))
        assert.strictEqual(
          (yield* session_row(session.id))?.expires_at.getTime(),
          session.expires_at.getTime(),
        )
        yield* TestClock.adjust(1)
        const written = yield* query_session_touch(session.id)
        const now = yield* now_ms
        assert.strictEqual(written?.getTime(), now + AUTH_SESSION_LIFETIME_MS)
        const row = yield* session_row(session.id)
        assert.strictEqual(row?.expires_at.getTime(), now + AUTH_SESSION_LIFETIME_MS)
        assert.strictEqual(row?.last_seen_at.getTime(), now)
      }),
    )

    it.effect("query_session_touch: every duration comes from the policy", () =>
      Effect.gen(function* () {
        const HOUR = 60 * 60 * SECOND
        const policy = {
          ...DEFAULT_SESSION_POLICY,
          lifetime_ms: 10 * DAY,
          extend_threshold_ms: HOUR,
          touch_interval_ms: 5 * SECOND,
        }
        const touch = (id: string) =>
          query_session_touch(id).pipe(Effect.provideService(SessionPolicy, policy))
        const owner = yield* create_account()
        const { session } = yield* insert_session(owner.id, 3 * HOUR)
        yield* TestClock.adjust(4 * SECOND)
        assert.isUndefined(yield* touch(session.id), "touched within the policy's 5 s interval")
        yield* TestClock.adjust(SECOND)
        // almost three hours left: more than the policy's threshold (the default's 1 day would extend)
        assert.isDefined(yield* touch(session.id), "not touched after the policy's 5 s interval")
        assert.strictEqual(
          (yield* session_row(session.id))?.expires_at.getTime(),
          session.expires_at.getTime(),
        )
        yield* TestClock.adjust(2 * HOUR)
        assert.isDefined(yield* touch(session.id))
        assert.strictEqual((yield* session_row(session.id))?.expires_at.getTime(), (yield* now_ms) + 10 * DAY)
      }),
    )

    it.effect("query_session_touch never revives an expired or deleted session", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const { session } = yield* insert_session(owner.id, 10 * SECOND)
        yield* TestClock.adjust(10 * SECOND)
        // stale and inside the threshold, so only the expiry check stops it
        assert.isUndefined(yield* query_session_touch(session.id))
        assert.deepStrictEqual(yield* session_row(session.id), session)
        yield* query_session_revoke_by_hash(session.id)
        assert.isUndefined(yield* query_session_touch(session.id))
        assert.isUndefined(yield* session_row(session.id))
      }),
    )

    // live sessions before, limit, evicted, kept (indexes into creation order)
    const limit_cases = [
      { live: 0, max: 5, evicted: 0 },
      { live: 1, max: 5, evicted: 0 },
      { live: 5, max: 5, evicted: 0 },
      { live: 6, max: 5, evicted: 1 },
      { live: 10, max: 3, evicted: 7 },
      { live: 4, max: 1, evicted: 3 },
    ]
    for (const { live, max, evicted } of limit_cases) {
      it.effect(
        `query_session_enforce_limit: ${live} live, limit ${max} → evicts the ${evicted} oldest`,
        () =>
          Effect.gen(function* () {
            const owner = yield* create_account()
            const other = yield* create_account()
            const { session: bystander } = yield* insert_session(other.id)
            const created = []
            for (let i = 0; i < live; i++) {
              created.push((yield* insert_session(owner.id)).session.id)
              yield* TestClock.adjust(SECOND)
            }
            const database = yield* Database
            const deleted = yield* database.transaction(query_session_enforce_limit(owner.id, max))
            assert.strictEqual(deleted, evicted)
            const remaining = (yield* query_session_list_for_account(owner.id)).map((s) => s.id)
            assert.deepStrictEqual(remaining, created.slice(evicted).reverse())
            assert.isDefined(yield* session_row(bystander.id))
          }),
      )
    }

    it.effect("query_session_enforce_limit deletes expired rows without counting them", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const { session: expired } = yield* insert_session(owner.id, SECOND)
        yield* TestClock.adjust(2 * SECOND)
        const live = [
          (yield* insert_session(owner.id)).session.id,
          (yield* insert_session(owner.id)).session.id,
        ]
        const database = yield* Database
        assert.strictEqual(yield* database.transaction(query_session_enforce_limit(owner.id, 2)), 1)
        assert.isUndefined(yield* session_row(expired.id))
        assert.sameMembers(
          (yield* session_rows(owner.id)).map((s) => s.id),
          live,
        )
      }),
    )

    it.effect("query_session_enforce_limit: `keep` survives even when created_at ties", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const ids = []
        for (let i = 0; i < 8; i++) ids.push((yield* insert_session(owner.id)).session.id)
        // the smallest id would be evicted first by (created_at desc, id desc)
        const keep = [...ids].sort()[0] as string
        const database = yield* Database
        yield* database.transaction(query_session_enforce_limit(owner.id, 1, { keep }))
        assert.deepStrictEqual(
          (yield* session_rows(owner.id)).map((s) => s.id),
          [keep],
        )
      }),
    )

    it.effect(
      "query_session_list_for_account: live sessions of that account only, newest first, limited",
      () =>
        Effect.gen(function* () {
          const owner = yield* create_account()
          const other = yield* create_account()
          yield* insert_session(other.id)
          const { session: expiring } = yield* insert_session(owner.id, 5 * SECOND)
          const ids = []
          for (let i = 0; i < 4; i++) {
            yield* TestClock.adjust(SECOND)
            ids.push((yield* insert_session(owner.id)).session.id)
          }
          yield* TestClock.adjust(5 * SECOND)
          const listed = yield* query_session_list_for_account(owner.id)
          assert.deepStrictEqual(
            listed.map((s) => s.id),
            [...ids].reverse(),
          )
          assert.notInclude(
            listed.map((s) => s.id),
            expiring.id,
          )
          const limited = yield* query_session_list_for_account(owner.id, 2)
          assert.deepStrictEqual(
            limited.map((s) => s.id),
            [ids[3], ids[2]],
          )
        }),
    )

    it.effect("query_session_list_all_active: live sessions with usernames, most recent activity first", () =>
      Effect.gen(function* () {
        yield* truncate_all
        const alice = yield* create_account("alice")
        const bob = yield* create_account("bob")
        const { session: a } = yield* insert_session(alice.id)
        yield* insert_session(bob.id, SECOND)
        yield* TestClock.adjust(SECOND)
        const { session: b } = yield* insert_session(bob.id)
        yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
        yield* query_session_touch(a.id)
        const listed = yield* query_session_list_all_active()
        assert.deepStrictEqual(
          listed.map((s) => [s.id, s.username]),
          [
            [a.id, "alice"],
            [b.id, "bob"],
          ],
        )
        assert.strictEqual((yield* query_session_list_all_active(1)).length, 1)
      }),
    )

    it.effect("query_session_revoke_by_hash deletes the session; an unknown hash is a no-op", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const { session } = yield* insert_session(owner.id)
        yield* query_session_revoke_by_hash(session.id)
        assert.isUndefined(yield* session_row(session.id))
        yield* query_session_revoke_by_hash(session.id)
      }),
    )

    it.effect("query_session_revoke_for_account: only the owner can revoke (IDOR guard)", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const attacker = yield* create_account()
        const { session } = yield* insert_session(owner.id)
        assert.isFalse(yield* query_session_revoke_for_account(session.id, attacker.id))
        assert.isDefined(yield* session_row(session.id))
        assert.isFalse(yield* query_session_revoke_for_account(session.id, missing_account_id()))
        assert.isTrue(yield* query_session_revoke_for_account(session.id, owner.id))
        assert.isUndefined(yield* session_row(session.id))
        assert.isFalse(yield* query_session_revoke_for_account(session.id, owner.id))
      }),
    )

    it.effect(
      "query_session_revoke_all_for_account deletes that account's sessions and returns how many",
      () =>
        Effect.gen(function* () {
          const owner = yield* create_account()
          const other = yield* create_account()
          for (let i = 0; i < 3; i++) yield* insert_session(owner.id)
          const { session: kept } = yield* insert_session(other.id)
          assert.strictEqual(yield* query_session_revoke_all_for_account(owner.id), 3)
          assert.strictEqual((yield* session_rows(owner.id)).length, 0)
          assert.isDefined(yield* session_row(kept.id))
          assert.strictEqual(yield* query_session_revoke_all_for_account(owner.id), 0)
        }),
    )

    it.effect("query_session_cleanup_expired deletes every expired row in bounded batches", () =>
      Effect.gen(function* () {
        yield* truncate_all
        yield* install_delete_statement_counter
        const owner = yield* create_account()
        for (let i = 0; i < 10; i++) yield* insert_session(owner.id, SECOND)
        const live = []
        for (let i = 0; i < 4; i++) live.push((yield* insert_session(owner.id)).session.id)
        yield* TestClock.adjust(SECOND)
        const policy = { ...DEFAULT_SESSION_POLICY, cleanup_batch_size: 3 }
        const deleted = yield* query_session_cleanup_expired().pipe(
          Effect.provideService(SessionPolicy, policy),
        )
        assert.strictEqual(deleted, 10)
        // 3 + 3 + 3 + 1: four statements, none larger than the batch
        assert.strictEqual(yield* delete_statement_count, 4)
        assert.sameMembers(
          (yield* session_rows(owner.id)).map((s) => s.id),
          live,
        )
        assert.strictEqual(yield* query_session_cleanup_expired(), 0)
      }),
    )

    it.effect("bad arguments are InvalidInput naming the field, never the value", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const token = yield* generate_session_token
        const checks: ReadonlyArray<
          readonly [Effect.Effect<unknown, { _tag: string; message: string }, TestServices>, string]
        > = [
          [query_session_get_valid(token), "token_hash"],
          [query_session_touch("ABC"), "token_hash"],
          [query_session_revoke_by_hash(""), "token_hash"],
          [query_session_revoke_for_account(token, owner.id), "token_hash"],
          [query_session_revoke_for_account(hash_session_token(token), "not-a-uuid"), "account_id"],
          [query_session_revoke_all_for_account("'; DROP TABLE account; --"), "account_id"],
          [query_session_list_for_account(owner.id, 0), "limit"],
          [query_session_list_for_account(owner.id, 1001), "limit"],
          [query_session_list_for_account(owner.id, 2.5), "limit"],
          [query_session_list_all_active(Number.NaN), "limit"],
          [query_session_list_all_active(-1), "limit"],
          [query_create_session(hash_session_token(token), owner.id, new Date(Number.NaN)), "expires_at"],
        ]
        for (const [effect, field] of checks) {
          const error = yield* Effect.flip(effect)
          assert.instanceOf(error, InvalidInput)
          assert.strictEqual((error as InvalidInput).field, field)
          assert.notInclude(error.message, token)
        }
        const database = yield* Database
        const limit_error = yield* Effect.flip(database.transaction(query_session_enforce_limit(owner.id, 0)))
        assert.strictEqual(limit_error._tag, "InvalidInput")
      }),
    )
  })
}

report_skipped_postgres("session queries")
