import { Context, Effect, Metric, Option, Redacted } from "effect"
import { Cookies, HttpEffect, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { DbError } from "../db/errors.js"
import type { AuthSession } from "../schema/session-table.js"
import type { SessionRejected } from "../session/errors.js"
import { SessionRepo } from "../session/repo.js"
import { hash_prefix, hash_session_token, is_session_token } from "../token.js"
import { clear_session_cookie, SessionCookie, session_cookie_setter } from "./cookie.js"

/** The session of the current request, provided to handlers by `with_session`. */
export class CurrentSession extends Context.Service<
  CurrentSession,
  {
    readonly session: AuthSession
    /** The cookie's token, e.g. to log out; redacted so it cannot be logged by accident. */
    readonly token: Redacted.Redacted<string>
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

/** Requests `with_session` turned away, by `SessionRejected` reason: malformed, unknown, expired, idle, absolute. */
export const session_rejections = Metric.frequency("effect_session_repo_session_rejections", {
  description: "session cookies rejected, by reason",
})

/** Counts the rejection and logs it at debug level, naming the session by its hash prefix only. */
const record_rejection = (token: string, rejection: SessionRejected) =>
  Metric.update(session_rejections, rejection.reason).pipe(
    Effect.andThen(Effect.logDebug("session rejected")),
    Effect.annotateLogs({
      reason: rejection.reason,
      ...(is_session_token(token) ? { session: hash_prefix(hash_session_token(token)) } : {}),
    }),
  )

const unauthorized = (had_cookie: boolean) => {
  const response = HttpServerResponse.jsonUnsafe({ error: "not signed in" }, { status: 401 })
  // a cookie that no longer names a session is removed
  return had_cookie ? clear_session_cookie(response) : Effect.succeed(response)
}

/**
 * Runs `handler` with the request's session as `CurrentSession`, or answers
 * 401 when there is none (a plain 401 whatever the reason; the reason goes to
 * the `session_rejections` metric and a debug log line). When validation extended the session, the cookie is
 * re-sent with the new Max-Age, whatever the handler answers (even a failure
 * turned into a response further out), unless the response sets or clears the
 * cookie itself.
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
    const authenticated = yield* repo.authenticate(token.value).pipe(
      Effect.map(Option.some),
      Effect.catchTag("SessionRejected", (rejection) =>
        Effect.as(record_rejection(token.value, rejection), Option.none()),
      ),
    )
    if (Option.isNone(authenticated)) return yield* unauthorized(true)
    const { session, extended } = authenticated.value
    const current = { session, token: Redacted.make(token.value) }
    if (!extended) return yield* Effect.provideService(handler, CurrentSession, current)
    const cookie = yield* SessionCookie
    const set_cookie = yield* session_cookie_setter(token.value, session.expires_at)
    const refresh = (response: HttpServerResponse.HttpServerResponse) =>
      Option.isSome(Cookies.get(response.cookies, cookie.name)) ? response : set_cookie(response)
    // the response the client finally gets, whatever produced it
    yield* HttpEffect.appendPreResponseHandler((_, response) => Effect.succeed(refresh(response)))
    return refresh(yield* Effect.provideService(handler, CurrentSession, current))
  })
