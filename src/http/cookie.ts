import { Clock, Context, Effect } from "effect"
import { HttpServerResponse } from "effect/http"

export interface SessionCookieShape {
  /** Cookie name. */
  readonly name: string
  /**
   * Send only over HTTPS (browsers count http://localhost as secure too).
   * Turn it off only for plain HTTP on another host name.
   */
  readonly secure: boolean
}

/**
 * The default name. Browsers keep a `__Host-` cookie only when it is Secure,
 * has Path=/ and no Domain, so no sibling subdomain or plain-HTTP page can
 * set or overwrite it (cookie tossing, session fixation).
 */
export const SECURE_SESSION_COOKIE_NAME = "__Host-session"
/** The name when `secure` is off: a `__Host-` cookie would be refused. */
export const INSECURE_SESSION_COOKIE_NAME = "session"

/** The cookie for `secure`: `__Host-session` when secure (the default), `session` otherwise. */
export const session_cookie = (options: { readonly secure: boolean }): SessionCookieShape => ({
  name: options.secure ? SECURE_SESSION_COOKIE_NAME : INSECURE_SESSION_COOKIE_NAME,
  secure: options.secure,
})

/** How the session cookie is named and sent; defaults suit production. */
export const SessionCookie = Context.Reference<SessionCookieShape>("effect-session-repo/SessionCookie", {
  defaultValue: () => session_cookie({ secure: true }),
})

/** A `__Host-` or `__Secure-` name without Secure: the browser would drop the cookie silently. */
const refused_by_browsers = (cookie: SessionCookieShape) =>
  !cookie.secure && /^__(Host|Secure)-/i.test(cookie.name)

// HttpOnly: scripts cannot read it. SameSite=Lax: not sent on cross-site
// subrequests (CSRF), still sent on top-level navigation. Path=/: every route.
const attributes = (secure: boolean) => ({ httpOnly: true, secure, sameSite: "lax" as const, path: "/" })

/**
 * A function that sets the session cookie on a response, with a Max-Age that
 * ends when the session row expires (rounded down: the cookie never outlives it).
 */
export const session_cookie_setter = (token: string, expires_at: Date) =>
  Effect.gen(function* () {
    const cookie = yield* SessionCookie
    if (refused_by_browsers(cookie))
      return yield* Effect.die(new Error(`SessionCookie: a cookie named ${cookie.name} needs secure: true`))
    const now = yield* Clock.currentTimeMillis
    const max_age_seconds = Math.max(0, Math.floor((expires_at.getTime() - now) / 1000))
    return (response: HttpServerResponse.HttpServerResponse) =>
      HttpServerResponse.setCookieUnsafe(response, cookie.name, token, {
        ...attributes(cookie.secure),
        maxAge: `${max_age_seconds} seconds`,
      })
  })

/** Sets the session cookie on `response` (see `session_cookie_setter`). */
export const set_session_cookie =
  (token: string, expires_at: Date) => (response: HttpServerResponse.HttpServerResponse) =>
    Effect.map(session_cookie_setter(token, expires_at), (set) => set(response))

/** Tells the browser to drop the session cookie. */
export const clear_session_cookie = Effect.fnUntraced(function* (
  response: HttpServerResponse.HttpServerResponse,
) {
  const cookie = yield* SessionCookie
  return HttpServerResponse.expireCookieUnsafe(response, cookie.name, attributes(cookie.secure))
})
