import type { AuthSession } from "../schema/session-table.js"
import type { SessionRejectionReason } from "./errors.js"
import type { SessionPolicyShape } from "./policy.js"

// The session's expiry arithmetic, in one place: what a new (or
// re-authenticated) session's times are, whether a session read at `now` is
// valid and if not why, and what its next write is due. The statements take
// the bounds computed here as parameters, so SQL and TypeScript agree.

const HOUR_MS = 3_600_000

/** `last_seen_hour` of a session seen at `now`: UTC arithmetic, so every connection's time zone agrees. */
export const seen_hour = (now: number): Date => new Date(now - (now % HOUR_MS))

/** The times of a session whose user proves a credential at `now`. */
export const authenticated_times = (policy: SessionPolicyShape, now: number) => {
  const absolute_expires_at = now + policy.absolute_lifetime_ms
  return {
    authenticated_at: new Date(now),
    seen_hour: seen_hour(now),
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
  // the policy in force caps every session, whatever cap was stored when it was issued
  authenticated_after: new Date(now - policy.absolute_lifetime_ms),
})

/**
 * When the session reaches its absolute lifetime: the end stored when it was
 * issued, or sooner when the policy in force allows less since its user
 * authenticated (a policy tightened after the sign-in).
 */
export const absolute_end = (session: AuthSession, policy: SessionPolicyShape): number =>
  Math.min(session.absolute_expires_at.getTime(), authenticated_since(session) + policy.absolute_lifetime_ms)

/**
 * When the session's user last proved a credential, as far as its lifetime
 * goes: no earlier than its creation, which was a sign-in. (A session from
 * before `authenticated_at` existed has the epoch there, so that it is never
 * fresh; its lifetime still counts from its creation.)
 */
const authenticated_since = (session: AuthSession): number =>
  Math.max(session.authenticated_at.getTime(), session.created_at.getTime())

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
  const absolute = absolute_end(session, policy)
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
 * `last_seen_at` (stale by the touch interval); or a new `expires_at`: an
 * extension (less than the threshold left, and room left before the absolute
 * end), or a cut to the absolute end (a policy tightened since the sign-in
 * left `expires_at` past it), so the cookie follows the session either way.
 */
export type TouchDue = "none" | "touch" | "extend"

export const touch_due = (session: AuthSession, policy: SessionPolicyShape, now: number): TouchDue => {
  const expires_at = session.expires_at.getTime()
  const end = absolute_end(session, policy)
  if (expires_at > end || (expires_at < now + policy.extend_threshold_ms && expires_at < end)) return "extend"
  if (session.last_seen_at.getTime() <= now - policy.touch_interval_ms) return "touch"
  return "none"
}

/** The parameters of the touch statement at `now` (see `session_statements`). */
export const touch_bounds = (policy: SessionPolicyShape, now: number) => ({
  ...live_bounds(policy, now),
  seen_hour: seen_hour(now),
  stale_before: new Date(now - policy.touch_interval_ms),
  extend_before: new Date(now + policy.extend_threshold_ms),
  // capped at each row's absolute end by the statement
  extended_expires_at: new Date(now + policy.lifetime_ms),
  absolute_lifetime_ms: policy.absolute_lifetime_ms,
})
