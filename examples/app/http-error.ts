import { Effect, Schema } from "effect"
import { HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import type {
  AccountNotFound,
  DbError,
  InvalidInput,
  SessionNotFresh,
  SessionRejected,
} from "effect-session-repo"

/** A failure the client caused, answered with `status` and a JSON `{ error }`. */
export class HttpError extends Schema.TaggedError<HttpError>()("HttpError", {
  status: Schema.Number,
  message: Schema.String,
}) {}

const json_error = (status: number, message: string) =>
  HttpServerResponse.jsonUnsafe({ error: message }, { status })

const is_route_not_found = (error: unknown) =>
  HttpServerError.isHttpServerError(error) && error.reason._tag === "RouteNotFound"

/**
 * A path no route serves answers a JSON 404 like the app's other refusals,
 * rather than the router's empty one: paths the router cannot even decode
 * (`/%ZZ`) included, which no catch-all route would see.
 */
export const unknown_paths_as_json = HttpRouter.middleware(
  (app) => app.pipe(Effect.catchIf(is_route_not_found, () => Effect.succeed(json_error(404, "not found")))),
  { global: true },
)

/**
 * Every expected failure becomes a JSON answer: 4xx for the client's
 * mistakes, 503 when the database is unavailable (worth a retry). A stale
 * session gets 403 with `reauthenticate: true`: the page asks for the
 * password (POST /api/reauthenticate) and retries.
 */
export const as_json_errors = <R>(
  handler: Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    HttpError | InvalidInput | AccountNotFound | SessionRejected | SessionNotFresh | DbError,
    R
  >,
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  handler.pipe(
    Effect.catchTags({
      HttpError: (error) => Effect.succeed(json_error(error.status, error.message)),
      InvalidInput: (error) => Effect.succeed(json_error(400, error.message)),
      AccountNotFound: () => Effect.succeed(json_error(404, "no such account")),
      // the session ended between the request's check and this handler's use of it
      SessionRejected: () => Effect.succeed(json_error(401, "not signed in")),
      SessionNotFresh: () =>
        Effect.succeed(
          HttpServerResponse.jsonUnsafe(
            { error: "confirm your password first", reauthenticate: true },
            { status: 403 },
          ),
        ),
      DbError: (error) =>
        Effect.logError("database error", error).pipe(
          Effect.as(json_error(error.is_retryable ? 503 : 500, "the database failed; try again")),
        ),
    }),
  )

// Invalid UTF-8 would decode to U+FFFD, and so would a JSON escape for half a
// surrogate pair ("\ud800") once hashed: two different passwords would become
// the same one. Both are refused instead.
const utf8 = new TextDecoder("utf-8", { fatal: true })
const NOT_UNICODE = "the body must be UTF-8 JSON whose strings are whole Unicode characters"

class IllFormedText extends Error {}

/** The body's JSON; throws `IllFormedText` for a string, or a key, that is not well-formed. */
const parse_well_formed_json = (bytes: ArrayBuffer): unknown => {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    throw new IllFormedText()
  }
  if (text === "") return null
  return JSON.parse(text, (key, value) => {
    if (!key.isWellFormed() || (typeof value === "string" && !value.isWellFormed())) throw new IllFormedText()
    return value
  })
}

/**
 * The request body as JSON, decoded with `schema`; 400 when it is not, or not
 * well-formed UTF-8 text, 413 when it is over the server's `MaxBodySize`.
 * Only `application/json` is read: a cross-site HTML form cannot send that
 * type without a CORS preflight, so a hostile page cannot log a visitor in.
 */
export const read_body = <S extends Schema.Codec<unknown, unknown>>(schema: S, what: string) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const content_type = request.headers["content-type"] ?? ""
    if (!/^application\/json\s*(;|$)/i.test(content_type)) {
      return yield* new HttpError({ status: 415, message: "the body must be sent as application/json" })
    }
    const bytes = yield* request.arrayBuffer.pipe(
      Effect.mapError((error) =>
        error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge"
          ? new HttpError({ status: 413, message: "the body is too large" })
          : new HttpError({ status: 400, message: "the body must be JSON" }),
      ),
    )
    const json = yield* Effect.try({
      try: () => parse_well_formed_json(bytes),
      catch: (error) =>
        new HttpError({
          status: 400,
          message: error instanceof IllFormedText ? NOT_UNICODE : "the body must be JSON",
        }),
    })
    return yield* Schema.decodeUnknownEffect(schema)(json).pipe(
      Effect.mapError(() => new HttpError({ status: 400, message: `the body must be ${what}` })),
    )
  })
