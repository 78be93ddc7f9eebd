import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  DEFAULT_SESSION_POLICY,
  layer_session_policy,
  make_session_policy,
  SESSION_POLICY_PRESETS,
  SessionPolicy,
  session_rejection,
} from "../src/index.ts"

describe("session policy", () => {
  it.effect("overrides apply on top of the defaults", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* make_session_policy(), DEFAULT_SESSION_POLICY)
      const policy = yield* make_session_policy({ touch_interval_ms: 5000, max_sessions: 2 })
      assert.deepStrictEqual(policy, { ...DEFAULT_SESSION_POLICY, touch_interval_ms: 5000, max_sessions: 2 })
    }),
  )

  it.effect("layer_session_policy provides the checked policy", () =>
    Effect.gen(function* () {
      const policy = yield* Effect.provide(
        SessionPolicy,
        layer_session_policy({ lifetime_ms: 7200_000, extend_threshold_ms: 600_000 }),
      )
      assert.strictEqual(policy.lifetime_ms, 7200_000)
      const error = yield* Effect.flip(
        Effect.provide(SessionPolicy, layer_session_policy({ cleanup_batch_size: 0 })),
      )
      assert.strictEqual(error.field, "cleanup_batch_size")
    }),
  )

  const rejected = [
    [{ lifetime_ms: 0 }, "lifetime_ms"],
    [{ lifetime_ms: 1.5 }, "lifetime_ms"],
    [{ lifetime_ms: Number.NaN }, "lifetime_ms"],
    // a threshold as long as the lifetime would make every validation write
    [{ lifetime_ms: 60_000, extend_threshold_ms: 60_000 }, "extend_threshold_ms"],
    [{ extend_threshold_ms: -1 }, "extend_threshold_ms"],
    [{ touch_interval_ms: -1 }, "touch_interval_ms"],
    [{ max_sessions: 0 }, "max_sessions"],
    [{ cleanup_batch_size: 0 }, "cleanup_batch_size"],
    [{ cleanup_batch_size: 1_000_000 }, "cleanup_batch_size"],
  ] as const
  for (const [overrides, field] of rejected) {
    it.effect(`rejects ${JSON.stringify(overrides)}`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(make_session_policy(overrides))
        assert.strictEqual(error._tag, "InvalidInput")
        assert.strictEqual(error.field, field)
      }),
    )
  }
})

describe("session policy presets and cross-field checks", () => {
  const HOUR = 3_600_000
  it.effect("the presets carry NIST SP 800-63B-4's limits and pass their own checks", () =>
    Effect.gen(function* () {
      const { aal1, aal2, aal3 } = SESSION_POLICY_PRESETS
      assert.deepInclude(aal1, { absolute_lifetime_ms: 30 * 24 * HOUR, idle_timeout_ms: null })
      assert.deepInclude(aal2, { absolute_lifetime_ms: 24 * HOUR, idle_timeout_ms: HOUR })
      assert.deepInclude(aal3, { absolute_lifetime_ms: 12 * HOUR, idle_timeout_ms: 15 * 60_000 })
      assert.deepInclude(DEFAULT_SESSION_POLICY, {
        absolute_lifetime_ms: 90 * 24 * HOUR,
        idle_timeout_ms: null,
      })
      for (const preset of Object.values(SESSION_POLICY_PRESETS))
        assert.deepStrictEqual(yield* make_session_policy({}, preset), preset)
      const tuned = yield* make_session_policy({ max_sessions: 2 }, aal3)
      assert.deepStrictEqual(tuned, { ...aal3, max_sessions: 2 })
    }),
  )

  const rejected = [
    // an idle timeout the absolute lifetime or the sliding window always ends first
    [{ absolute_lifetime_ms: HOUR, idle_timeout_ms: 2 * HOUR }, "idle_timeout_ms"],
    [{ lifetime_ms: HOUR, extend_threshold_ms: 0, idle_timeout_ms: 2 * HOUR }, "idle_timeout_ms"],
    [{ idle_timeout_ms: 0 }, "idle_timeout_ms"],
    // last_seen_at is written once a minute: a 5-minute idle timeout would end sessions in use
    [{ idle_timeout_ms: 5 * 60_000 }, "touch_interval_ms"],
    [{ absolute_lifetime_ms: 0 }, "absolute_lifetime_ms"],
    [{ ip_storage: "hashed" as never }, "ip_storage"],
  ] as const
  for (const [overrides, field] of rejected) {
    it.effect(`rejects ${JSON.stringify(overrides)}`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(make_session_policy(overrides))
        assert.strictEqual(error.field, field)
      }),
    )
  }

  it.effect("a 10-minute idle timeout works with a touch interval of a minute, not more", () =>
    Effect.gen(function* () {
      yield* make_session_policy({ idle_timeout_ms: 10 * 60_000 })
      const error = yield* Effect.flip(
        make_session_policy({ idle_timeout_ms: 10 * 60_000, touch_interval_ms: 60_001 }),
      )
      assert.strictEqual(error.field, "touch_interval_ms")
    }),
  )
})

describe("session_rejection", () => {
  const policy = SESSION_POLICY_PRESETS.aal2
  const at = (ms: number) => new Date(ms)
  const session = (expires: number, absolute: number, last_seen: number) => ({
    id: "0".repeat(64),
    account_id: "a",
    created_at: at(0),
    authenticated_at: at(0),
    expires_at: at(expires),
    absolute_expires_at: at(absolute),
    last_seen_at: at(last_seen),
    client_ip: null,
    user_agent: null,
  })
  const HOUR = 3_600_000
  it("valid until the earliest end; then that end is the reason, ties going to absolute, then expired", () => {
    assert.isUndefined(session_rejection(session(10 * HOUR, 24 * HOUR, 0), policy, HOUR - 1))
    assert.strictEqual(session_rejection(session(10 * HOUR, 24 * HOUR, 0), policy, HOUR), "idle")
    assert.strictEqual(session_rejection(session(HOUR / 2, 24 * HOUR, 0), policy, HOUR + 1), "expired")
    assert.strictEqual(session_rejection(session(HOUR, HOUR, 0), policy, HOUR), "absolute")
    assert.strictEqual(session_rejection(session(HOUR, 2 * HOUR, 0), policy, HOUR), "expired")
    // without an idle timeout, idleness never ends a session
    assert.isUndefined(session_rejection(session(30 * HOUR, 40 * HOUR, 0), DEFAULT_SESSION_POLICY, 29 * HOUR))
  })
})
