import { Context, Effect, Option } from "effect"
import { Cookies, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { DbError } from "../db/errors.ts"
import type { AuthSession } from "../schema.ts"
import { SessionRepo } from "../session/repo.ts"
import { clear_session_cookie, SessionCookie, set_session_cookie } from "./cookie.ts"

/** The session of the current request, provided to handlers by `with_session`. */
export class CurrentSession extends Context.Service<
  CurrentSession,
  {
    readonly session: AuthSession
    /** The cookie's token, e.g. to log out. */
    readonly token: string
  }
>()("effect-session-repo/CurrentSession") {}

/** The session cookie of the current request, if any. */
export const request_session_token: Effect.Effect<
  Option.Option<string>,
  never,
  HttpServerRequest.HttpServerRequest
> = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const cookie = yield* SessionCookie
  return Option.fromUndefinedOr(request.cookies[cookie.name])
})

const unauthorized = (had_cookie: boolean) => {
  const response = HttpServerResponse.jsonUnsafe({ error: "not signed in" }, { status: 401 })
  // a cookie that no longer names a session is removed
  return had_cookie ? clear_session_cookie(response) : Effect.succeed(response)
}

/**
 * Runs `handler` with the request's session as `CurrentSession`, or answers
 * 401 when there is none. When validation extended the session, the cookie is
 * re-sent with the new Max-Age (unless the handler set or cleared it itself).
 */
export const with_session = <E, R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
): Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  E | DbError,
  Exclude<R, CurrentSession> | SessionRepo | HttpServerRequest.HttpServerRequest
> =>
  Effect.gen(function* () {
    const token = yield* request_session_token
    if (Option.isNone(token)) return yield* unauthorized(false)
    const repo = yield* SessionRepo
    const authenticated = yield* repo.authenticate(token.value)
    if (Option.isNone(authenticated)) return yield* unauthorized(true)
    const { session, extended } = authenticated.value
    const response = yield* Effect.provideService(handler, CurrentSession, { session, token: token.value })
    const cookie = yield* SessionCookie
    const handler_set_cookie = Option.isSome(Cookies.get(response.cookies, cookie.name))
    return extended && !handler_set_cookie
      ? yield* set_session_cookie(token.value, session.expires_at)(response)
      : response
  })
