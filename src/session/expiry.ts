import type { AuthSession } from "../schema/session-table.js"
import type { SessionRejectionReason } from "./errors.js"
import type { SessionPolicyShape } from "./policy.js"

// The session's expiry arithmetic, in one place: what a new (or
// re-authenticated) session's times are, whether a session read at `now` is
// valid and if not why, and what its next write is due. The statements take
// the bounds computed here as parameters, so SQL and TypeScript agree.

/** The times of a session whose user proves a credential at `now`. */
export const authenticated_times = (policy: SessionPolicyShape, now: number) => {
  const absolute_expires_at = now + policy.absolute_lifetime_ms
  return {
    authenticated_at: new Date(now),
    absolute_expires_at: new Date(absolute_expires_at),
    expires_at: new Date(Math.min(now + policy.lifetime_ms, absolute_expires_at)),
  }
}

/** Sessions last seen at or before this are idle; null when the policy has no idle timeout. */
export const idle_before = (policy: SessionPolicyShape, now: number): Date | null =>
  policy.idle_timeout_ms === null ? null : new Date(now - policy.idle_timeout_ms)

/** The bounds a statement needs to tell live sessions from ended ones at `now`. */
export const live_bounds = (policy: SessionPolicyShape, now: number) => ({
  now: new Date(now),
  idle_before: idle_before(policy, now),
})

/**
 * Why `session` is not valid at `now`, or undefined when it is. Of several
 * ends that passed, the earliest is the reason (ties: absolute, expired, idle).
 * On every validation: plain comparisons, no allocation.
 */
export const session_rejection = (
  session: AuthSession,
  policy: SessionPolicyShape,
  now: number,
): SessionRejectionReason | undefined => {
  const absolute = session.absolute_expires_at.getTime()
  const expired = session.expires_at.getTime()
  const idle =
    policy.idle_timeout_ms === null
      ? Number.POSITIVE_INFINITY
      : session.last_seen_at.getTime() + policy.idle_timeout_ms
  const earliest = Math.min(absolute, expired, idle)
  if (earliest > now) return undefined
  return earliest === absolute ? "absolute" : earliest === expired ? "expired" : "idle"
}

/**
 * What a valid session read at `now` is due: nothing; a touch of
 * `last_seen_at` (stale by the touch interval); or an extension (less than the
 * threshold left, and room left before the absolute expiry).
 */
export type TouchDue = "none" | "touch" | "extend"

export const touch_due = (session: AuthSession, policy: SessionPolicyShape, now: number): TouchDue => {
  const expires_at = session.expires_at.getTime()
  if (expires_at < now + policy.extend_threshold_ms && expires_at < session.absolute_expires_at.getTime())
    return "extend"
  if (session.last_seen_at.getTime() <= now - policy.touch_interval_ms) return "touch"
  return "none"
}

/** The parameters of the touch statement at `now` (see `session_statements`). */
export const touch_bounds = (policy: SessionPolicyShape, now: number) => ({
  ...live_bounds(policy, now),
  stale_before: new Date(now - policy.touch_interval_ms),
  extend_before: new Date(now + policy.extend_threshold_ms),
  // capped at each row's absolute_expires_at by the statement
  extended_expires_at: new Date(now + policy.lifetime_ms),
})
