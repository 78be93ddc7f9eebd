import { Context, Effect, Layer } from "effect"
import {
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_MAX_PER_ACCOUNT,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
} from "../token.js"
import type { InvalidInput } from "./errors.js"
import { require_int_in_range } from "./input.js"

/** Every duration and limit the session queries use, in one value. */
export interface SessionPolicyShape {
  readonly lifetime_ms: number
  readonly extend_threshold_ms: number
  readonly touch_interval_ms: number
  readonly max_sessions: number
  /** Rows deleted per statement by `query_session_cleanup_expired`. */
  readonly cleanup_batch_size: number
}

export const DEFAULT_SESSION_POLICY: SessionPolicyShape = {
  lifetime_ms: AUTH_SESSION_LIFETIME_MS,
  extend_threshold_ms: AUTH_SESSION_EXTEND_THRESHOLD_MS,
  touch_interval_ms: AUTH_SESSION_TOUCH_INTERVAL_MS,
  max_sessions: AUTH_SESSION_MAX_PER_ACCOUNT,
  cleanup_batch_size: 1000,
}

/** The policy in force; provide one made by `make_session_policy` to override the defaults. */
export const SessionPolicy = Context.Reference<SessionPolicyShape>("effect-session-repo/SessionPolicy", {
  defaultValue: () => DEFAULT_SESSION_POLICY,
})

const MAX_DURATION_MS = 100 * 365 * 24 * 60 * 60 * 1000

/**
 * The defaults with `overrides` applied, checked: whole milliseconds, an extend
 * threshold shorter than the lifetime (or every validation would write, and a
 * touch could shorten a session), and batches of at least one row.
 */
export const make_session_policy = (
  overrides: Partial<SessionPolicyShape> = {},
): Effect.Effect<SessionPolicyShape, InvalidInput> =>
  Effect.gen(function* () {
    const policy = { ...DEFAULT_SESSION_POLICY, ...overrides }
    const lifetime_ms = yield* require_int_in_range("lifetime_ms", policy.lifetime_ms, 1, MAX_DURATION_MS)
    return {
      lifetime_ms,
      extend_threshold_ms: yield* require_int_in_range(
        "extend_threshold_ms",
        policy.extend_threshold_ms,
        0,
        lifetime_ms - 1,
      ),
      touch_interval_ms: yield* require_int_in_range(
        "touch_interval_ms",
        policy.touch_interval_ms,
        0,
        MAX_DURATION_MS,
      ),
      max_sessions: yield* require_int_in_range(
        "max_sessions",
        policy.max_sessions,
        1,
        Number.MAX_SAFE_INTEGER,
      ),
      cleanup_batch_size: yield* require_int_in_range(
        "cleanup_batch_size",
        policy.cleanup_batch_size,
        1,
        100_000,
      ),
    }
  })

/** Provides `SessionPolicy` from `overrides`; fails to build on a bad value. */
export const layer_session_policy = (
  overrides: Partial<SessionPolicyShape>,
): Layer.Layer<never, InvalidInput> => Layer.effect(SessionPolicy, make_session_policy(overrides))
