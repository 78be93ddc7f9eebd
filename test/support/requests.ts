import { Effect, Option } from "effect"
import { Cookies, HttpServerRequest, type HttpServerResponse } from "effect/http"
import { with_session } from "../../src/http.ts"

/** Runs `handler` behind `with_session` for a request carrying the session cookie `cookie`. */
export const request_with = <E, R>(
  cookie: string | undefined,
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
) =>
  with_session(handler).pipe(
    Effect.provideService(
      HttpServerRequest.HttpServerRequest,
      HttpServerRequest.fromWeb(
        new Request(
          "http://localhost/",
          cookie === undefined ? {} : { headers: { cookie: `session=${cookie}` } },
        ),
      ),
    ),
  )

/** The session cookie a response sets, if any. */
export const session_cookie = (response: HttpServerResponse.HttpServerResponse) =>
  Cookies.get(response.cookies, "session").pipe(Option.getOrUndefined)
