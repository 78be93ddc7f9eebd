import { isIP } from "node:net"
import { Context, Effect, Option, Schema } from "effect"
import { HttpServerRequest } from "effect/http"

// Anyone can send X-Forwarded-For, so it says nothing unless a proxy of ours
// wrote it. Each proxy appends the address it saw: with N trusted proxies in
// front of the app, the N-th entry from the right is the one the outermost of
// them saw; entries further left were written by the client and may be forged.

/** How many reverse proxies in front of the app append to X-Forwarded-For (0: none, the header is ignored). */
export const ProxyHops = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** The app's `TRUSTED_PROXY_HOPS`; 0 unless configured, so a forged header is never believed by default. */
export const TrustedProxyHops = Context.Reference<number>("example/TrustedProxyHops", {
  defaultValue: () => 0,
})

/** Whether the warning about X-Forwarded-For without trusted proxies was logged (once per process). */
let warned_about_proxy = false

// an address or nothing: a garbage header must never reach the session layer
const ip = (text: string | undefined): string | undefined =>
  text !== undefined && isIP(text) !== 0 ? text : undefined

/** The client's IP address as far as the app can trust it: the socket's, or the trusted proxies' report. */
export const client_address = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const hops = yield* TrustedProxyHops
  const socket = ip(Option.getOrUndefined(request.remoteAddress))
  if (hops === 0) {
    if (request.headers["x-forwarded-for"] !== undefined && !warned_about_proxy) {
      warned_about_proxy = true
      // every client then looks like the proxy: one client's failed logins throttle them all
      yield* Effect.logWarning(
        "X-Forwarded-For arrives but TRUSTED_PROXY_HOPS is 0: behind a reverse proxy, set it to the number of proxies",
      )
    }
    return socket
  }
  const forwarded = (request.headers["x-forwarded-for"] ?? "").split(",").map((entry) => entry.trim())
  return ip(forwarded.at(-hops)) ?? socket
})
