import { Config, Context, Duration, Effect, Layer, Option } from "effect"
import { InvalidInput } from "./errors.js"
import { require_cleanup_batch_size, require_max_sessions } from "./input.js"

/** How a session stores its client's address: as given, cut to its /24 (IPv4) or /48 (IPv6), or not at all. */
export type IpStorage = "full" | "truncated" | "none"

/** Every duration and limit the sessions follow, resolved and checked (see `make_session_policy`). */
export interface SessionPolicyShape {
  /** How far `expires_at` reaches from creation or an extension (the sliding window). */
  readonly lifetime_ms: number
  /** A validation extends the session when less than this remains before `expires_at`. */
  readonly extend_threshold_ms: number
  /** `last_seen_at` is written at most once per this interval per session. */
  readonly touch_interval_ms: number
  readonly max_sessions: number
  /** Rows deleted per statement by the cleanup. */
  readonly cleanup_batch_size: number
  /**
   * How long a session may live from authentication (its creation or its last
   * re-authentication), however often it is used: no extension passes it.
   * Stored on the row, and checked against the policy in force too, so a
   * shorter one reaches sessions issued under a longer one.
   */
  readonly absolute_lifetime_ms: number
  /**
   * A session unused for longer is invalid, even before `expires_at`; null for
   * none (the sliding window alone). Checked against the policy in force.
   */
  readonly idle_timeout_ms: number | null
  readonly ip_storage: IpStorage
}

/** A policy as written: durations as Effect `Duration` inputs ("30 days", `Duration.hours(1)`, …). */
export interface SessionPolicyInput {
  /** The preset the other fields override; `default` unless given. */
  readonly preset?: SessionPolicyPreset
  readonly lifetime?: Duration.Input
  readonly extend_threshold?: Duration.Input
  readonly touch_interval?: Duration.Input
  readonly absolute_lifetime?: Duration.Input
  /** null for none. */
  readonly idle_timeout?: Duration.Input | null
  readonly max_sessions?: number
  readonly cleanup_batch_size?: number
  readonly ip_storage?: IpStorage
}

type PresetFields = Required<Omit<SessionPolicyInput, "preset">>

const DEFAULT_FIELDS: PresetFields = {
  lifetime: "30 days",
  extend_threshold: "1 day",
  touch_interval: "1 minute",
  absolute_lifetime: "90 days",
  idle_timeout: null,
  max_sessions: 5,
  cleanup_batch_size: 1000,
  ip_storage: "full",
}

/**
 * The presets as written. `default` is the specification's sliding window (30 days, extended when
 * less than a day is left), capped at 90 days from authentication: a daily
 * user signs in again once a quarter. The others are the reauthentication
 * limits of NIST SP 800-63B-4 (final, 2025), from the "Reauthentication" part
 * of each level in section 2: AAL1 at most 30 days overall; AAL2 at most 24
 * hours overall and 1 hour of inactivity; AAL3 at most 12 hours overall and
 * 15 minutes of inactivity. At AAL2 and AAL3 the cookie lives as long as the
 * absolute limit allows; the idle timeout is checked on the server.
 */
const PRESET_FIELDS = {
  default: DEFAULT_FIELDS,
  aal1: { ...DEFAULT_FIELDS, absolute_lifetime: "30 days" },
  aal2: {
    ...DEFAULT_FIELDS,
    lifetime: "24 hours",
    extend_threshold: "1 hour",
    absolute_lifetime: "24 hours",
    idle_timeout: "1 hour",
  },
  aal3: {
    ...DEFAULT_FIELDS,
    lifetime: "12 hours",
    extend_threshold: "1 hour",
    absolute_lifetime: "12 hours",
    idle_timeout: "15 minutes",
  },
} as const satisfies Record<string, PresetFields>

export type SessionPolicyPreset = keyof typeof PRESET_FIELDS

const PRESET_NAMES = Object.keys(PRESET_FIELDS) as ReadonlyArray<SessionPolicyPreset>

/**
 * The policy the sessions follow. It has no default: `SessionRepo.layer`
 * reads it when built, so a policy provided to it always takes effect and a
 * missing one is a compile error. Provide `layer_session_policy(...)` or
 * `layer_session_policy_from_config`.
 */
export class SessionPolicy extends Context.Service<SessionPolicy, SessionPolicyShape>()(
  "effect-session-repo/SessionPolicy",
) {}

const MAX_DURATION_MS = 100 * 365 * 24 * 60 * 60 * 1000

/**
 * `last_seen_at` lags real use by up to one touch interval, so the idle
 * timeout is only that precise: the interval may be at most this share of it.
 */
const IDLE_TIMEOUT_TOUCH_INTERVALS = 10

const IP_STORAGE: ReadonlyArray<IpStorage> = ["full", "truncated", "none"]

const reject = (field: string, message: string) => Effect.fail(new InvalidInput({ field, message }))

/** A duration in whole milliseconds within `min_ms..max_ms`. */
const require_duration_ms = (
  field: string,
  input: Duration.Input,
  min_ms: number,
  max_ms: number,
): Effect.Effect<number, InvalidInput> => {
  const duration = Duration.fromInput(input)
  const ms = Option.isSome(duration) ? Duration.toMillis(duration.value) : Number.NaN
  return Number.isSafeInteger(ms) && ms >= min_ms && ms <= max_ms
    ? Effect.succeed(ms)
    : reject(
        field,
        `${field} must be a duration of whole milliseconds from ${Duration.format(Duration.millis(min_ms))} ` +
          `to ${Duration.format(Duration.millis(max_ms))}, e.g. "30 days"`,
      )
}

/**
 * The policy `input` describes: its preset (`default` unless given) with the
 * fields it sets, checked. Refused: an extend threshold not shorter than the
 * lifetime (every validation would write, and a touch could shorten a
 * session); an idle timeout longer than the lifetime or the absolute lifetime
 * (it could never end a session first) or shorter than ten touch intervals
 * (sessions in use would end); batches of no rows.
 */
export const make_session_policy = (
  input: SessionPolicyInput = {},
): Effect.Effect<SessionPolicyShape, InvalidInput> =>
  Effect.gen(function* () {
    const preset = input.preset ?? "default"
    if (!PRESET_NAMES.includes(preset))
      return yield* reject("preset", `preset must be one of ${PRESET_NAMES.join(", ")}`)
    const fields: PresetFields = { ...PRESET_FIELDS[preset], ...defined(input) }
    const lifetime_ms = yield* require_duration_ms("lifetime", fields.lifetime, 1, MAX_DURATION_MS)
    const absolute_lifetime_ms = yield* require_duration_ms(
      "absolute_lifetime",
      fields.absolute_lifetime,
      1,
      MAX_DURATION_MS,
    )
    const touch_interval_ms = yield* require_duration_ms(
      "touch_interval",
      fields.touch_interval,
      0,
      MAX_DURATION_MS,
    )
    const extend_threshold_ms = yield* require_duration_ms(
      "extend_threshold",
      fields.extend_threshold,
      0,
      lifetime_ms - 1,
    )
    const idle_timeout_ms =
      fields.idle_timeout === null
        ? null
        : yield* require_duration_ms(
            "idle_timeout",
            fields.idle_timeout,
            1,
            Math.min(lifetime_ms, absolute_lifetime_ms),
          )
    if (idle_timeout_ms !== null && touch_interval_ms * IDLE_TIMEOUT_TOUCH_INTERVALS > idle_timeout_ms)
      return yield* reject(
        "touch_interval",
        `touch_interval must be at most 1/${IDLE_TIMEOUT_TOUCH_INTERVALS} of idle_timeout: ` +
          "last_seen_at is written once per interval, so a coarser one ends sessions in use",
      )
    if (!IP_STORAGE.includes(fields.ip_storage))
      return yield* reject("ip_storage", `ip_storage must be one of ${IP_STORAGE.join(", ")}`)
    return {
      lifetime_ms,
      extend_threshold_ms,
      touch_interval_ms,
      max_sessions: yield* require_max_sessions(fields.max_sessions),
      cleanup_batch_size: yield* require_cleanup_batch_size(fields.cleanup_batch_size),
      absolute_lifetime_ms,
      idle_timeout_ms,
      ip_storage: fields.ip_storage,
    }
  })

/** The fields `input` sets (an explicit `undefined` leaves the preset's value). */
const defined = (input: SessionPolicyInput): Partial<PresetFields> =>
  Object.fromEntries(
    Object.entries(input).filter(([field, value]) => field !== "preset" && value !== undefined),
  )

/** The presets, resolved (see `PRESET_FIELDS` for their sources): `make_session_policy({ preset })`. */
export const SESSION_POLICY_PRESETS: Readonly<Record<SessionPolicyPreset, SessionPolicyShape>> =
  Object.fromEntries(
    PRESET_NAMES.map((preset) => [preset, Effect.runSync(make_session_policy({ preset }))]),
  ) as Record<SessionPolicyPreset, SessionPolicyShape>

/** The default policy, resolved: 30-day sliding window, 90-day cap, no idle timeout, 5 sessions. */
export const DEFAULT_SESSION_POLICY: SessionPolicyShape = SESSION_POLICY_PRESETS.default

/** Provides `SessionPolicy` as `input` describes it; fails to build on a bad value. */
export const layer_session_policy = (
  input: SessionPolicyInput = {},
): Layer.Layer<SessionPolicy, InvalidInput> => Layer.effect(SessionPolicy, make_session_policy(input))

/** An optional setting: absent is "keep the preset's". */
const setting = (name: string) => Config.option(Config.String(name))

/**
 * The policy from the environment: `SESSION_POLICY` (a preset: default, aal1,
 * aal2, aal3) and, each overriding it, `SESSION_LIFETIME`,
 * `SESSION_EXTEND_THRESHOLD`, `SESSION_TOUCH_INTERVAL`,
 * `SESSION_ABSOLUTE_LIFETIME`, `SESSION_IDLE_TIMEOUT` (durations such as
 * "90 days"; the idle timeout also "none"), `SESSION_MAX_PER_ACCOUNT`,
 * `SESSION_CLEANUP_BATCH_SIZE` and `SESSION_IP_STORAGE` (full, truncated,
 * none).
 */
export const session_policy_config: Config.Config<SessionPolicyInput> = Config.all({
  preset: setting("SESSION_POLICY"),
  lifetime: setting("SESSION_LIFETIME"),
  extend_threshold: setting("SESSION_EXTEND_THRESHOLD"),
  touch_interval: setting("SESSION_TOUCH_INTERVAL"),
  absolute_lifetime: setting("SESSION_ABSOLUTE_LIFETIME"),
  idle_timeout: setting("SESSION_IDLE_TIMEOUT"),
  max_sessions: Config.option(Config.Int("SESSION_MAX_PER_ACCOUNT")),
  cleanup_batch_size: Config.option(Config.Int("SESSION_CLEANUP_BATCH_SIZE")),
  ip_storage: setting("SESSION_IP_STORAGE"),
}).pipe(
  // strings are checked by make_session_policy, which names the setting's field
  Config.map((settings) => {
    const input: Record<string, unknown> = {}
    for (const [field, value] of Object.entries(settings) as Array<[string, Option.Option<unknown>]>)
      if (Option.isSome(value))
        input[field] = field === "idle_timeout" && value.value === "none" ? null : value.value
    return input as SessionPolicyInput
  }),
)

/** Provides `SessionPolicy` from the environment (see `session_policy_config`). */
export const layer_session_policy_from_config: Layer.Layer<SessionPolicy, InvalidInput | Config.ConfigError> =
  Layer.effect(
    SessionPolicy,
    Effect.gen(function* () {
      return yield* make_session_policy(yield* session_policy_config)
    }),
  )
