import { Context, Effect, Layer } from "effect"
import {
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_MAX_PER_ACCOUNT,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
} from "../token.js"
import { InvalidInput } from "./errors.js"
import { require_int_in_range } from "./input.js"

/** How a session stores its client's address: as given, cut to its /24 (IPv4) or /48 (IPv6), or not at all. */
export type IpStorage = "full" | "truncated" | "none"

/** Every duration and limit the session queries use, in one value. */
export interface SessionPolicyShape {
  /** How far `expires_at` reaches from creation or an extension (the sliding window). */
  readonly lifetime_ms: number
  /** A validation extends the session when less than this remains before `expires_at`. */
  readonly extend_threshold_ms: number
  /** `last_seen_at` is written at most once per this interval per session. */
  readonly touch_interval_ms: number
  readonly max_sessions: number
  /** Rows deleted per statement by `query_session_cleanup_expired`. */
  readonly cleanup_batch_size: number
  /**
   * How long a session may live from authentication (its creation or its last
   * re-authentication), however often it is used: no extension passes it.
   * Stored on the row at that moment (`absolute_expires_at`).
   */
  readonly absolute_lifetime_ms: number
  /**
   * A session unused for longer is invalid, even before `expires_at`; null for
   * none (the sliding window alone). Checked against the policy in force.
   */
  readonly idle_timeout_ms: number | null
  readonly ip_storage: IpStorage
}

const MINUTE = 60 * 1000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

/**
 * The specification's sliding window (30 days, extended when less than a day
 * is left), capped at 90 days from authentication: a daily user signs in
 * again once a quarter.
 */
export const DEFAULT_SESSION_POLICY: SessionPolicyShape = {
  lifetime_ms: AUTH_SESSION_LIFETIME_MS,
  extend_threshold_ms: AUTH_SESSION_EXTEND_THRESHOLD_MS,
  touch_interval_ms: AUTH_SESSION_TOUCH_INTERVAL_MS,
  max_sessions: AUTH_SESSION_MAX_PER_ACCOUNT,
  cleanup_batch_size: 1000,
  absolute_lifetime_ms: 90 * DAY,
  idle_timeout_ms: null,
  ip_storage: "full",
}

/**
 * Reauthentication limits of NIST SP 800-63B-4 (final, 2025), from the
 * "Reauthentication" part of each level in section 2: AAL1 at most 30 days overall; AAL2 at
 * most 24 hours overall and 1 hour of inactivity; AAL3 at most 12 hours
 * overall and 15 minutes of inactivity. At AAL2 and AAL3 the cookie lives as
 * long as the absolute limit allows; the idle timeout is checked on the server.
 */
export const SESSION_POLICY_PRESETS = {
  default: DEFAULT_SESSION_POLICY,
  aal1: { ...DEFAULT_SESSION_POLICY, absolute_lifetime_ms: 30 * DAY },
  aal2: {
    ...DEFAULT_SESSION_POLICY,
    lifetime_ms: 24 * HOUR,
    extend_threshold_ms: HOUR,
    absolute_lifetime_ms: 24 * HOUR,
    idle_timeout_ms: HOUR,
  },
  aal3: {
    ...DEFAULT_SESSION_POLICY,
    lifetime_ms: 12 * HOUR,
    extend_threshold_ms: HOUR,
    absolute_lifetime_ms: 12 * HOUR,
    idle_timeout_ms: 15 * MINUTE,
  },
} as const satisfies Record<string, SessionPolicyShape>

export type SessionPolicyPreset = keyof typeof SESSION_POLICY_PRESETS

/** The policy in force; provide one made by `make_session_policy` to override the defaults. */
export const SessionPolicy = Context.Reference<SessionPolicyShape>("effect-session-repo/SessionPolicy", {
  defaultValue: () => DEFAULT_SESSION_POLICY,
})

const MAX_DURATION_MS = 100 * 365 * DAY

/**
 * `last_seen_at` lags real use by up to one touch interval, so the idle
 * timeout is only that precise: the interval may be at most this share of it.
 */
const IDLE_TIMEOUT_TOUCH_INTERVALS = 10

const IP_STORAGE: ReadonlyArray<IpStorage> = ["full", "truncated", "none"]

const reject = (field: string, message: string) => Effect.fail(new InvalidInput({ field, message }))

/**
 * `overrides` on top of `base` (the default policy, or a preset), checked:
 * whole milliseconds; an extend threshold shorter than the lifetime (or every
 * validation would write, and a touch could shorten a session); an idle
 * timeout no longer than the lifetime or the absolute lifetime (it could never
 * trigger) and at least ten touch intervals (or sessions in use would end);
 * batches of at least one row.
 */
export const make_session_policy = (
  overrides: Partial<SessionPolicyShape> = {},
  base: SessionPolicyShape = DEFAULT_SESSION_POLICY,
): Effect.Effect<SessionPolicyShape, InvalidInput> =>
  Effect.gen(function* () {
    const policy = { ...base, ...overrides }
    const lifetime_ms = yield* require_int_in_range("lifetime_ms", policy.lifetime_ms, 1, MAX_DURATION_MS)
    const absolute_lifetime_ms = yield* require_int_in_range(
      "absolute_lifetime_ms",
      policy.absolute_lifetime_ms,
      1,
      MAX_DURATION_MS,
    )
    const touch_interval_ms = yield* require_int_in_range(
      "touch_interval_ms",
      policy.touch_interval_ms,
      0,
      MAX_DURATION_MS,
    )
    const idle_timeout_ms =
      policy.idle_timeout_ms === null
        ? null
        : yield* require_int_in_range(
            "idle_timeout_ms",
            policy.idle_timeout_ms,
            1,
            Math.min(lifetime_ms, absolute_lifetime_ms),
          ).pipe(
            Effect.mapError(
              () =>
                new InvalidInput({
                  field: "idle_timeout_ms",
                  message:
                    "idle_timeout_ms must be null or an integer from 1 to the lifetime and the absolute lifetime " +
                    "(a longer one never ends a session first)",
                }),
            ),
          )
    if (idle_timeout_ms !== null && touch_interval_ms * IDLE_TIMEOUT_TOUCH_INTERVALS > idle_timeout_ms)
      return yield* reject(
        "touch_interval_ms",
        `touch_interval_ms must be at most 1/${IDLE_TIMEOUT_TOUCH_INTERVALS} of idle_timeout_ms: ` +
          "last_seen_at is written once per interval, so a coarser one ends sessions in use",
      )
    if (!IP_STORAGE.includes(policy.ip_storage))
      return yield* reject("ip_storage", `ip_storage must be one of ${IP_STORAGE.join(", ")}`)
    return {
      lifetime_ms,
      extend_threshold_ms: yield* require_int_in_range(
        "extend_threshold_ms",
        policy.extend_threshold_ms,
        0,
        lifetime_ms - 1,
      ),
      touch_interval_ms,
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
      absolute_lifetime_ms,
      idle_timeout_ms,
      ip_storage: policy.ip_storage,
    }
  })

/** Provides `SessionPolicy` from `overrides` on `base`; fails to build on a bad value. */
export const layer_session_policy = (
  overrides: Partial<SessionPolicyShape>,
  base: SessionPolicyShape = DEFAULT_SESSION_POLICY,
): Layer.Layer<never, InvalidInput> => Layer.effect(SessionPolicy, make_session_policy(overrides, base))
