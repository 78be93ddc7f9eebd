import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  DEFAULT_SESSION_POLICY,
  layer_session_policy,
  make_session_policy,
  SessionPolicy,
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
