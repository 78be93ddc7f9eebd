import Bowser from "bowser"
import type { AuthSession, AuthSessionWithUsername } from "effect-session-repo"

/** "Firefox 128", "Windows 10": what bowser makes of the stored User-Agent, null where it knows nothing. */
export const device_of = (user_agent: string | null) => {
  // bowser refuses an empty string; the library stores a missing or blank header as null
  if (user_agent === null) return { browser: null, os: null }
  const { browser, os } = Bowser.parse(user_agent)
  const major = browser.version?.split(".")[0]
  return {
    browser: browser.name ? [browser.name, major].filter(Boolean).join(" ") : null,
    os: os.name ? [os.name, os.versionName ?? os.version].filter(Boolean).join(" ") : null,
  }
}

/** "Firefox 128 on Windows 10 (203.0.113.7)": a device in words, for sentences. */
export const device_label = (user_agent: string | null, ip: string | null): string => {
  const { browser, os } = device_of(user_agent)
  const name =
    browser !== null && os !== null
      ? `${browser} on ${os}`
      : (browser ?? (os === null ? "an unknown device" : `a browser on ${os}`))
  return ip === null ? name : `${name} (${ip})`
}

/** The times and the device of a session, as JSON. */
const described = (session: AuthSession) => ({
  ...device_of(session.user_agent),
  ip: session.client_ip,
  created_at: session.created_at.toISOString(),
  last_seen_at: session.last_seen_at.toISOString(),
  expires_at: session.expires_at.toISOString(),
})

/** What a user sees of their session: never the token. */
export const session_view = (session: AuthSession, current_id?: string) => ({
  id: session.id,
  ...described(session),
  current: session.id === current_id,
})

/** What an admin sees of anyone's session. */
export const admin_session_view = (session: AuthSessionWithUsername) => ({
  // a prefix identifies a session in the list without handing out its id
  id: `${session.id.slice(0, 12)}…`,
  // for the admin's "sign out everywhere": an account id is no secret
  account_id: session.account_id,
  username: session.username,
  ...described(session),
})
