import { Clock, Context, Effect } from "effect"
import { HttpServerResponse } from "effect/http"

export interface SessionCookieShape {
  /** Cookie name. */
  readonly name: string
  /** Send only over HTTPS. Keep it on in production; turn it off for plain-HTTP localhost. */
  readonly secure: boolean
}

/** How the session cookie is named and sent; defaults suit production. */
export const SessionCookie = Context.Reference<SessionCookieShape>("effect-session-repo/SessionCookie", {
  defaultValue: () => ({ name: "session", secure: true }),
})

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
