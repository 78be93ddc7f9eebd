import { Clock, Effect, Exit } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import { hash_prefix } from "effect-session-repo"

// One log line per request, with nothing secret in it: a session id (a token
// hash) in the path is cut to the prefix the rest of the project shows, and
// anything else that could be a token is redacted, wherever it stands in the
// path (`/x;TOKEN`, `/a=TOKEN`). The query string is left out, and no header
// is logged.

/**
 * A run of URL-safe characters long enough to hold a secret: a token is 43
 * base64url characters, a session id 64 hex digits, a key often fewer.
 * Percent-escapes count as characters, as they are to whoever decodes them.
 */
const SECRET_LIKE = /(?:[A-Za-z0-9_-]|%[0-9A-Fa-f]{2}){24,}/g
const SESSION_ID = /^[0-9a-f]{64}$/

/** `text` with every run that could be a secret redacted, and a session id cut to its prefix. */
const redact_secrets = (text: string): string =>
  text.replace(SECRET_LIKE, (run) => (SESSION_ID.test(run) ? hash_prefix(run) : "[redacted]"))

/** The request's path as it may be logged. */
export const loggable_path = (url: string): string => {
  const [path = "", query] = url.split("?", 2)
  const safe = redact_secrets(path)
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
