import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Layer } from "effect"
import {
  DEFAULT_SESSION_POLICY,
  layer_session_policy,
  layer_session_policy_from_config,
  make_session_policy,
  SESSION_POLICY_PRESETS,
  SessionPolicy,
  session_rejection,
} from "../src/index.ts"

const HOUR = 3_600_000

describe("session policy", () => {
  it.effect("durations as Effect Duration inputs, on top of the default preset", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* make_session_policy(), DEFAULT_SESSION_POLICY)
      const policy = yield* make_session_policy({ touch_interval: "5 seconds", max_sessions: 2 })
      assert.deepStrictEqual(policy, { ...DEFAULT_SESSION_POLICY, touch_interval_ms: 5000, max_sessions: 2 })
      const same = yield* make_session_policy({ touch_interval: Duration.seconds(5), max_sessions: 2 })
      assert.deepStrictEqual(same, policy)
    }),
  )

  it.effect("layer_session_policy provides the checked policy", () =>
    Effect.gen(function* () {
      const policy = yield* Effect.provide(
        SessionPolicy,
        layer_session_policy({ lifetime: "2 hours", extend_threshold: "10 minutes" }),
      )
      assert.strictEqual(policy.lifetime_ms, 2 * HOUR)
      const error = yield* Effect.flip(
        Effect.provide(SessionPolicy, layer_session_policy({ cleanup_batch_size: 0 })),
      )
      assert.strictEqual(error.field, "cleanup_batch_size")
    }),
  )

  it.effect("from the environment: a preset, durations and numbers, each named in its error", () =>
    Effect.gen(function* () {
      const from_env = (env: Record<string, string>) =>
        Effect.provide(
          SessionPolicy,
          layer_session_policy_from_config.pipe(
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env))),
          ),
        )
      assert.deepStrictEqual(yield* from_env({}), DEFAULT_SESSION_POLICY)
      const tuned = yield* from_env({
        SESSION_POLICY: "aal2",
        SESSION_ABSOLUTE_LIFETIME: "12 hours",
        SESSION_MAX_PER_ACCOUNT: "3",
        SESSION_IP_STORAGE: "truncated",
      })
      assert.deepStrictEqual(tuned, {
        ...SESSION_POLICY_PRESETS.aal2,
        absolute_lifetime_ms: 12 * HOUR,
        max_sessions: 3,
        ip_storage: "truncated",
      })
      assert.strictEqual(
        (yield* from_env({ SESSION_IDLE_TIMEOUT: "20 minutes" })).idle_timeout_ms,
        20 * 60_000,
      )
      assert.isNull(
        (yield* from_env({ SESSION_POLICY: "aal3", SESSION_IDLE_TIMEOUT: "none" })).idle_timeout_ms,
      )
      const unknown_preset = yield* Effect.flip(from_env({ SESSION_POLICY: "aal9" }))
      assert.include(String(unknown_preset), "preset must be one of default, aal1, aal2, aal3")
      const bad_duration = yield* Effect.flip(from_env({ SESSION_LIFETIME: "a month" }))
      assert.include(String(bad_duration), "lifetime must be a duration")
    }),
  )

  const rejected = [
    [{ lifetime: 0 }, "lifetime"],
    [{ lifetime: 1.5 }, "lifetime"],
    [{ lifetime: Number.NaN }, "lifetime"],
    [{ lifetime: "Infinity" }, "lifetime"],
    [{ lifetime: "soon" as never }, "lifetime"],
    // a threshold as long as the lifetime would make every validation write
    [{ lifetime: "1 minute", extend_threshold: "1 minute" }, "extend_threshold"],
    [{ extend_threshold: -1 }, "extend_threshold"],
    [{ touch_interval: -1 }, "touch_interval"],
    [{ max_sessions: 0 }, "max_sessions"],
    [{ cleanup_batch_size: 0 }, "cleanup_batch_size"],
    [{ cleanup_batch_size: 1_000_000 }, "cleanup_batch_size"],
    [{ preset: "aal9" as never }, "preset"],
  ] as const
  for (const [input, field] of rejected) {
    it.effect(`rejects ${JSON.stringify(input)}`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(make_session_policy(input))
        assert.strictEqual(error._tag, "InvalidInput")
        assert.strictEqual(error.field, field)
      }),
    )
  }
})

describe("session policy presets and cross-field checks", () => {
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
      const tuned = yield* make_session_policy({ preset: "aal3", max_sessions: 2 })
      assert.deepStrictEqual(tuned, { ...aal3, max_sessions: 2 })
    }),
  )

  const rejected = [
    // an idle timeout the absolute lifetime or the sliding window always ends first
    [{ absolute_lifetime: "1 hour", idle_timeout: "2 hours" }, "idle_timeout"],
    [{ lifetime: "1 hour", extend_threshold: 0, idle_timeout: "2 hours" }, "idle_timeout"],
    [{ idle_timeout: 0 }, "idle_timeout"],
    // last_seen_at is written once a minute: a 5-minute idle timeout would end sessions in use
    [{ idle_timeout: "5 minutes" }, "touch_interval"],
    [{ absolute_lifetime: 0 }, "absolute_lifetime"],
    [{ ip_storage: "hashed" as never }, "ip_storage"],
  ] as const
  for (const [input, field] of rejected) {
    it.effect(`rejects ${JSON.stringify(input)}`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(make_session_policy(input))
        assert.strictEqual(error.field, field)
      }),
    )
  }

  it.effect("a 10-minute idle timeout works with a touch interval of a minute, not more", () =>
    Effect.gen(function* () {
      yield* make_session_policy({ idle_timeout: "10 minutes" })
      const error = yield* Effect.flip(
        make_session_policy({ idle_timeout: "10 minutes", touch_interval: 60_001 }),
      )
      assert.strictEqual(error.field, "touch_interval")
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

  it("the policy in force caps sessions issued under a longer one, counted from the sign-in", () => {
    // issued under the default: 30 days of sliding window, 90 days stored as its absolute end
    const issued = { ...session(30 * 24 * HOUR, 90 * 24 * HOUR, 0), last_seen_at: at(24 * HOUR) }
    const aal2 = { ...policy, idle_timeout_ms: null }
    assert.isUndefined(session_rejection(issued, aal2, 24 * HOUR - 1))
    assert.strictEqual(session_rejection(issued, aal2, 24 * HOUR), "absolute")
    // from before authenticated_at existed (the epoch there): counted from its creation
    const upgraded = { ...issued, authenticated_at: at(-1e12), created_at: at(0) }
    assert.isUndefined(session_rejection(upgraded, aal2, 24 * HOUR - 1))
    assert.strictEqual(session_rejection(upgraded, aal2, 24 * HOUR), "absolute")
  })
})
