import { Context, Effect } from "effect"
import { HttpServerRequest, type HttpServerResponse } from "effect/http"
import { HttpError } from "./http-error.ts"

/**
 * The origins (scheme, host and port) the app is served at: `APP_ORIGIN`, or
 * by default its local URLs. State-changing requests from anywhere else are
 * refused.
 */
export class AppOrigins extends Context.Service<AppOrigins, ReadonlySet<string>>()("example/AppOrigins") {}

/** The app's local URLs on `port`, when no public origin is configured. */
export const local_origins = (port: number): ReadonlySet<string> =>
  new Set([`http://localhost:${port}`, `http://127.0.0.1:${port}`, `http://[::1]:${port}`])

/** `origin` in the form browsers send it (scheme://host[:port], default port left out), or undefined. */
export const normalised_origin = (origin: string): string | undefined => {
  try {
    const url = new URL(origin)
    return url.origin === "null" ? undefined : url.origin
  } catch {
    return undefined
  }
}

/**
 * Refuses state-changing requests from other origins. SameSite=Lax already
 * keeps the cookie off cross-site POSTs; this also covers same-site
 * neighbours (another port or subdomain) and requests that need no cookie.
 * The Origin header is compared with the app's configured origins, scheme and
 * port included, never with the request's own Host header (which the sender
 * chooses). Clients that send no Origin (curl) are let through unless
 * Sec-Fetch-Site says cross-site.
 */
export const same_origin_only = <E, R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
): Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  E | HttpError,
  R | HttpServerRequest.HttpServerRequest | AppOrigins
> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const origins = yield* AppOrigins
    const site = request.headers["sec-fetch-site"]
    const origin = request.headers.origin
    const cross_site =
      (site !== undefined && site !== "same-origin" && site !== "none") ||
      (origin !== undefined && !origins.has(normalised_origin(origin) ?? ""))
    if (cross_site) return yield* new HttpError({ status: 403, message: "cross-origin request refused" })
    return yield* handler
  })
