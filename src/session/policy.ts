import { Context } from "effect"
import {
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_MAX_PER_ACCOUNT,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
} from "../token.ts"

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

/** The policy in force; provide another value to override the defaults. */
export const SessionPolicy = Context.Reference<SessionPolicyShape>("effect-session-repo/SessionPolicy", {
  defaultValue: () => DEFAULT_SESSION_POLICY,
})
