import { Context, Effect, Metric, Option, Redacted } from "effect"
import { Cookies, HttpEffect, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { DbError } from "../db/errors.js"
import type { AuthSession } from "../schema/session-table.js"
import type { SessionRejected } from "../session/errors.js"
import { type Authenticated, SessionRepo } from "../session/repo.js"
import { hash_prefix, hash_session_token, is_session_token } from "../token.js"
import { clear_session_cookie, SessionCookie, session_cookie_setter } from "./cookie.js"

/** The request's session, and its cookie's token (redacted, so it cannot be logged by accident). */
export interface CurrentSessionShape {
  readonly session: AuthSession
  readonly token: Redacted.Redacted<string>
}

// Typed as written, so the published declaration keeps the registered ids (see SessionRepo).
const CurrentSessionService: Context.ServiceClass<
  CurrentSession,
  "effect-session-repo/CurrentSession",
  CurrentSessionShape
> = Context.Service<CurrentSession, CurrentSessionShape>()("effect-session-repo/CurrentSession")

/** The session of the current request, provided to handlers by `with_session` and `session_middleware`. */
export class CurrentSession extends CurrentSessionService {}

/** More session cookies in one request than any browser sends; the rest are ignored. */
const MAX_SESSION_COOKIES = 4

/** Every distinct value `header` (a Cookie header) gives the cookie `name`, in the order sent. */
const cookie_values = (header: string | undefined, name: string): ReadonlyArray<string> => {
  const values: Array<string> = []
  for (const pair of (header ?? "").split(";")) {
    const separator = pair.indexOf("=")
    if (separator === -1 || pair.slice(0, separator).trim() !== name) continue
    const value = pair.slice(separator + 1).trim()
    if (!values.includes(value)) values.push(value)
  }
  return values
}

/** Every distinct value the request's Cookie header gives the session cookie, in the order sent. */
const session_cookie_values: Effect.Effect<
  ReadonlyArray<string>,
  never,
  HttpServerRequest.HttpServerRequest
> = Effect.contextWith((context: Context.Context<HttpServerRequest.HttpServerRequest>) =>
  Effect.succeed(
    cookie_values(
      Context.get(context, HttpServerRequest.HttpServerRequest).headers.cookie,
      Context.get(context, SessionCookie).name,
    ),
  ),
)

/**
 * The session cookie's values that have the shape of a token, in the order
 * sent, at most 4 (garbage never takes a place a real token needs). A browser
 * sends several when cookies of one name were set for different paths or
 * domains, e.g. one planted by a sibling subdomain (which a `__Host-` name
 * prevents).
 */
export const request_session_tokens: Effect.Effect<
  ReadonlyArray<string>,
  never,
  HttpServerRequest.HttpServerRequest
> = Effect.map(session_cookie_values, (values) =>
  values.filter(is_session_token).slice(0, MAX_SESSION_COOKIES),
)

/** The first session cookie of the current request, if any (see `request_session_tokens`). */
export const request_session_token: Effect.Effect<
  Option.Option<string>,
  never,
  HttpServerRequest.HttpServerRequest
> = Effect.map(request_session_tokens, (tokens) => Option.fromUndefinedOr(tokens[0]))

/**
 * Session cookies `with_session` turned away, by `SessionRejected` reason
 * (malformed, unknown, expired, idle, absolute), and requests refused for
 * carrying valid sessions of different accounts ("ambiguous").
 */
export const session_rejections = Metric.frequency("effect_session_repo_session_rejections", {
  description: "session cookies rejected, by reason",
})

/** Counts the rejection and logs it at debug level, naming the session by its hash prefix only. */
const record_rejection = (token: string, rejection: SessionRejected) =>
  Metric.update(session_rejections, rejection.reason).pipe(
    Effect.andThen(Effect.logDebug("session rejected")),
    Effect.annotateLogs({ reason: rejection.reason, session: hash_prefix(hash_session_token(token)) }),
  )

/** Valid sessions of different accounts in one request: refused, and nothing revoked or cleared. */
const ambiguous = (tokens: ReadonlyArray<string>) =>
  Metric.update(session_rejections, "ambiguous").pipe(
    Effect.andThen(Effect.logWarning("request refused: session cookies of different accounts")),
    Effect.annotateLogs({
      sessions: tokens.map((token) => hash_prefix(hash_session_token(token))).join(" "),
    }),
    Effect.as(HttpServerResponse.jsonUnsafe({ error: "not signed in" }, { status: 401 })),
  )

const unauthorized = (had_cookie: boolean) => {
  const response = HttpServerResponse.jsonUnsafe({ error: "not signed in" }, { status: 401 })
  // a cookie that no longer names a session is removed
  return had_cookie ? clear_session_cookie(response) : Effect.succeed(response)
}

/** A valid session of the request, and whether its validation extended it (the cookie then follows). */
interface RequestSession {
  readonly current: CurrentSession["Service"]
  readonly extended: boolean
}

/** The one token sent, authenticated: the common case, in as few steps as it takes (every request runs it). */
const only_session = (
  repo: SessionRepo["Service"],
  token: string,
): Effect.Effect<RequestSession | HttpServerResponse.HttpServerResponse, DbError> =>
  Effect.map(
    repo.authenticate(token),
    ({ session, extended }): RequestSession | HttpServerResponse.HttpServerResponse => ({
      current: { session, token: Redacted.make(token) },
      extended,
    }),
  ).pipe(
    Effect.catchTag("SessionRejected", (rejection) =>
      Effect.andThen(record_rejection(token, rejection), unauthorized(true)),
    ),
  )

/**
 * Several session cookies: invalid ones are ignored; valid ones of different
 * accounts refuse the request (401, nothing revoked or cleared): a planted
 * cookie can neither swap the user nor sign them out.
 */
const one_of_sessions = (repo: SessionRepo["Service"], values: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const tokens = values.filter(is_session_token).slice(0, MAX_SESSION_COOKIES)
    if (tokens.length < values.length) yield* Metric.update(session_rejections, "malformed")
    const valid: Array<{ readonly token: string; readonly authenticated: Authenticated }> = []
    for (const token of tokens) {
      const authenticated = yield* repo.authenticate(token).pipe(
        Effect.map(Option.some),
        Effect.catchTag("SessionRejected", (rejection) =>
          Effect.as(record_rejection(token, rejection), Option.none()),
        ),
      )
      if (Option.isSome(authenticated)) valid.push({ token, authenticated: authenticated.value })
    }
    const [chosen] = valid
    // Clearing expires the Path=/ cookie: with several sent, that may be the
    // user's own one while a planted cookie on a longer path stays.
    if (chosen === undefined) return yield* unauthorized(values.length === 1)
    if (new Set(valid.map(({ authenticated }) => String(authenticated.session.account_id))).size > 1)
      return yield* ambiguous(valid.map(({ token }) => token))
    const { session, extended } = chosen.authenticated
    return { current: { session, token: Redacted.make(chosen.token) }, extended }
  })

/**
 * The request's session, or the response that refuses the request (401):
 * no session cookie, or none valid, or several valid of different accounts
 * (`one_of_sessions`).
 */
const request_session = (
  repo: SessionRepo["Service"],
): Effect.Effect<
  RequestSession | HttpServerResponse.HttpServerResponse,
  DbError,
  HttpServerRequest.HttpServerRequest
> =>
  Effect.contextWith((context: Context.Context<HttpServerRequest.HttpServerRequest>) => {
    const values = cookie_values(
      Context.get(context, HttpServerRequest.HttpServerRequest).headers.cookie,
      Context.get(context, SessionCookie).name,
    )
    if (values.length === 0) return unauthorized(false)
    const [only] = values
    return values.length === 1 && is_session_token(only)
      ? only_session(repo, only)
      : one_of_sessions(repo, values)
  })

/**
 * The refusing response as it is, or `handler` with `CurrentSession`; when
 * validation extended the session, the cookie is re-sent with the new Max-Age
 * whatever the handler answers (even a failure turned into a response further
 * out), unless the response sets or clears the cookie itself.
 */
const serve = <E, R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
  outcome: RequestSession | HttpServerResponse.HttpServerResponse,
) => {
  if (HttpServerResponse.isHttpServerResponse(outcome)) return Effect.succeed(outcome)
  const { current, extended } = outcome
  return extended
    ? with_refreshed_cookie(handler, current)
    : Effect.provideService(handler, CurrentSession, current)
}

/** `handler` with `CurrentSession`, its response (whatever produced it) re-sending the extended session's cookie. */
const with_refreshed_cookie = <E, R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
  current: CurrentSessionShape,
) =>
  Effect.gen(function* () {
    const cookie = yield* SessionCookie
    const set_cookie = yield* session_cookie_setter(Redacted.value(current.token), current.session.expires_at)
    const refresh = (response: HttpServerResponse.HttpServerResponse) =>
      Option.isSome(Cookies.get(response.cookies, cookie.name)) ? response : set_cookie(response)
    // the response the client finally gets, whatever produced it
    yield* HttpEffect.appendPreResponseHandler((_, response) => Effect.succeed(refresh(response)))
    return refresh(yield* Effect.provideService(handler, CurrentSession, current))
  })

/**
 * Runs `handler` with the request's session as `CurrentSession`, or answers
 * 401 when there is none (a plain 401 whatever the reason; the reason goes to
 * the `session_rejections` metric and a debug log line). Several cookies:
 * see `request_session`. When validation extended the session, the response
 * re-sends the cookie. A `DbError` while validating is the caller's to handle
 * (`session_middleware` answers it with a logged 503).
 */
export const with_session = <E, R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
): Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  E | DbError,
  Exclude<R, CurrentSession> | SessionRepo | HttpServerRequest.HttpServerRequest
> => SessionRepo.use((repo) => Effect.flatMap(request_session(repo), (outcome) => serve(handler, outcome)))

/** Validation failed on the database: logged, and answered so the client tries again. */
const unavailable = (error: DbError) =>
  Effect.as(
    Effect.logError("session validation failed", error),
    HttpServerResponse.jsonUnsafe(
      { error: "sessions are unavailable; try again" },
      { status: 503, headers: { "retry-after": "1" } },
    ),
  )

/**
 * `with_session` for every route it is provided to, as an `HttpRouter`
 * middleware: `HttpRouter.add("GET", "/me", handler).pipe(Layer.provide(session_middleware.layer))`.
 * Its layer needs `SessionRepo`. A `DbError` while validating is logged and
 * answered with 503 and `Retry-After: 1` (the session may well be valid); the
 * route's own errors pass through.
 */
export const session_middleware = HttpRouter.middleware<{ provides: CurrentSession }>()(
  Effect.gen(function* () {
    const repo = yield* SessionRepo
    return (route) =>
      request_session(repo).pipe(
        Effect.catchTag("DbError", unavailable),
        Effect.flatMap((outcome) => serve(route, outcome)),
      )
  }),
)
