import type { AuditEntry, RevokeReason, SessionEvent } from "effect-session-repo"
import { device_label, device_of } from "./session-view.ts"

// The library's audit entries (its lifecycle events, as recorded) put in
// words for people. Plain text only: the page puts it in with textContent,
// and the User-Agent a client sent never appears as it was written, only
// what the parser recognised in it.

const sessions = (count: number) => (count === 1 ? "1 session" : `${count} sessions`)

/** Why a single session was revoked. */
const REVOKED: Record<RevokeReason, string> = {
  logout: "Signed out",
  owner: "Signed out from the session list",
  admin: "Signed out by an administrator",
  password_change: "Signed out by a password change",
}

/** Many sessions revoked at once: every one of the account's, or all but the caller's. */
const revoked_many = (reason: RevokeReason, count: number, others: boolean): string => {
  if (reason === "password_change")
    return `Password changed: ${others ? `${count} other` : count} ${count === 1 ? "session" : "sessions"} signed out`
  const where = others ? "elsewhere" : "everywhere"
  const by = reason === "admin" ? " by an administrator" : ""
  return `Signed out ${where}${by} (${sessions(count)})`
}

/** What happened, in a sentence: "New sign-in from Firefox 128 on Linux (203.0.113.7)". */
export const describe_event = (event: SessionEvent): string => {
  switch (event.kind) {
    case "revoked_all":
      return revoked_many(event.reason, event.count, false)
    case "revoked_others":
      return revoked_many(event.reason, event.count, true)
    case "swept":
      return `Cleanup removed ${event.count} ended ${event.count === 1 ? "session" : "sessions"}`
  }
  const device = device_label(event.user_agent, event.client_ip)
  switch (event.kind) {
    case "created":
      return `New sign-in from ${device}`
    case "extended":
      return `Session extended by use: ${device}`
    case "rotated":
      return `Session given a new key: ${device}`
    case "reauthenticated":
      return `Password confirmed: ${device}`
    case "revoked":
      return `${REVOKED[event.reason]}: ${device}`
    case "evicted":
      return `Session ended by the session limit: ${device}`
    case "ended":
      return event.reason === "expired"
        ? `Session expired: ${device}`
        : event.reason === "idle"
          ? `Session ended after a time unused: ${device}`
          : `Session reached its longest lifetime: ${device}`
  }
}

/** An entry of the account's own recent activity: when, and what happened. */
export const activity_view = ({ event }: AuditEntry) => ({
  at: event.at.toISOString(),
  kind: event.kind,
  text: describe_event(event),
})

/**
 * An entry of the admin's audit view: the account by its username (its id
 * once the account is gone), the session by its hash prefix, the device as
 * the session list shows it.
 */
export const audit_view = ({ event }: AuditEntry, usernames: ReadonlyMap<string, string>) => {
  const session = "session" in event ? event : undefined
  const device = session !== undefined && "user_agent" in session ? session : undefined
  const account_id = "account_id" in event ? event.account_id : null
  return {
    at: event.at.toISOString(),
    account: account_id === null ? null : (usernames.get(account_id) ?? account_id),
    kind: event.kind,
    reason: "reason" in event ? event.reason : null,
    count: "count" in event ? event.count : 1,
    session: session?.session ?? null,
    ...(device === undefined
      ? { browser: null, os: null, ip: null }
      : { ...device_of(device.user_agent), ip: device.client_ip }),
    text: describe_event(event),
  }
}
