import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"

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

/** Sets the headers above on every response, and HSTS with `hsts` (when the cookie is Secure). */
export const security_headers = (options: { readonly hsts: boolean }) => {
  const headers = options.hsts
    ? { ...HEADERS, "strict-transport-security": "max-age=31536000; includeSubDomains" }
    : HEADERS
  return HttpRouter.middleware((app) => Effect.map(app, HttpServerResponse.setHeaders(headers)), {
    global: true,
  })
}
