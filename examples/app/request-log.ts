import { Clock, Effect, Exit } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import { hash_prefix } from "effect-session-repo"

// One log line per request, with nothing secret in it: session ids (token
// hashes) in paths are cut to the prefix the rest of the project shows, and a
// path segment that could be a pasted token is redacted. The query string is
// left out.

const TOKEN_HASH = /^[0-9a-f]{64}$/
/** Long runs of URL-safe characters: a token, a hash, a key. */
const SECRET_LIKE = /^[A-Za-z0-9_~.%-]{24,}$/

/** The request's path as it may be logged. */
export const loggable_path = (url: string): string => {
  const [path = "", query] = url.split("?", 2)
  const safe = path
    .split("/")
    .map((segment) =>
      TOKEN_HASH.test(segment) ? hash_prefix(segment) : SECRET_LIKE.test(segment) ? "[redacted]" : segment,
    )
    .join("/")
  return query === undefined ? safe : `${safe}?…`
}

/** Logs method, redacted path, status and duration of every request. */
export const RequestLog = HttpRouter.middleware(
  (app) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const started = yield* Clock.currentTimeMillis
      const exit = yield* Effect.exit(app)
      yield* Effect.logInfo("request").pipe(
        Effect.annotateLogs({
          method: request.method,
          path: loggable_path(request.url),
          status: Exit.isSuccess(exit) ? exit.value.status : "failed",
          ms: (yield* Clock.currentTimeMillis) - started,
        }),
      )
      return yield* exit
    }),
  { global: true },
)
