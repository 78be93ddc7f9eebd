import { Effect } from "effect"
import { HttpEffect, HttpRouter, HttpServerResponse } from "effect/http"

// Headers on every response. The policy allows this origin's own script and
// style sheet only (examples/app/page.ts serves them as files: no
// 'unsafe-inline'), no framing, no plugins; nothing is cached, since almost
// every answer is personal.

const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ")

const HEADERS: Record<string, string> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cache-control": "no-store",
}

/** The headers above, and HSTS with `hsts` (when the cookie is Secure). */
export const security_header_values = (options: { readonly hsts: boolean }): Record<string, string> =>
  options.hsts ? { ...HEADERS, "strict-transport-security": "max-age=31536000; includeSubDomains" } : HEADERS

/**
 * Sets the headers on every response the router sends. Through a pre-response
 * handler, not on the handler's result: a failure turned into a response
 * further out (the router's empty 404 for a path it cannot decode, a defect's
 * 500) gets them too. Node's own answers are ./node-server.ts's.
 */
export const security_headers = (options: { readonly hsts: boolean }) => {
  const headers = security_header_values(options)
  const set_headers = HttpEffect.appendPreResponseHandler((_, response) =>
    Effect.succeed(HttpServerResponse.setHeaders(response, headers)),
  )
  return HttpRouter.middleware((app) => Effect.andThen(set_headers, app), { global: true })
}
