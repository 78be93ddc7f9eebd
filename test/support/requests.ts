import { Effect, Option } from "effect"
import { Cookies, HttpServerRequest, type HttpServerResponse } from "effect/http"
import { SECURE_SESSION_COOKIE_NAME, with_session } from "../../src/http.ts"

/**
 * Runs `handler` behind `with_session` for a request carrying the session
 * cookie `cookie` (several: one cookie header entry each, in that order).
 */
export const request_with = <E, R>(
  cookie: string | ReadonlyArray<string> | undefined,
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
) => {
  const values = cookie === undefined ? [] : typeof cookie === "string" ? [cookie] : cookie
  const header = values.map((value) => `${SECURE_SESSION_COOKIE_NAME}=${value}`).join("; ")
  return with_session(handler).pipe(
    Effect.provideService(
      HttpServerRequest.HttpServerRequest,
      HttpServerRequest.fromWeb(
        new Request("http://localhost/", values.length === 0 ? {} : { headers: { cookie: header } }),
      ),
    ),
  )
}

/** The session cookie a response sets, if any. */
export const session_cookie = (response: HttpServerResponse.HttpServerResponse) =>
  Cookies.get(response.cookies, SECURE_SESSION_COOKIE_NAME).pipe(Option.getOrUndefined)
