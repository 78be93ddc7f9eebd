import { assert, layer } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { Cookies, HttpServerRequest, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { CurrentSession, clear_session_cookie, SessionCookie, with_session } from "../src/http.ts"
import { AUTH_SESSION_EXTEND_THRESHOLD_MS, AUTH_SESSION_LIFETIME_MS, SessionRepo } from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { create_account, now_ms, session_row } from "./support/fixtures.ts"
import { request_with, session_cookie } from "./support/requests.ts"

const ok = Effect.succeed(HttpServerResponse.jsonUnsafe({ ok: true }))
for (const backend of backends) {
  layer(backend.layer)(`with_session on ${backend.name}`, (it) => {
    it.effect("provides CurrentSession, and sends no cookie while the session needs no extension", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token, session } = yield* repo.create_session(owner.id)
        const response = yield* request_with(
          Redacted.value(token),
          CurrentSession.useSync((current) => HttpServerResponse.jsonUnsafe({ id: current.session.id })),
        )
        assert.strictEqual(response.status, 200)
        assert.isUndefined(session_cookie(response))
        const body = response.body as unknown as { body: Uint8Array }
        assert.include(new TextDecoder().decode(body.body), session.id)
        yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS - 1)
        assert.isUndefined(session_cookie(yield* request_with(Redacted.value(token), ok)))
        assert.strictEqual(
          (yield* session_row(session.id))?.expires_at.getTime(),
          session.expires_at.getTime(),
        )
      }),
    )

    it.effect("an extension re-sends the cookie with the Max-Age of the row's new expiry", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token, session } = yield* repo.create_session(owner.id)
        yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS + 1)
        const response = yield* request_with(Redacted.value(token), ok)
        const cookie = session_cookie(response)
        assert.strictEqual(cookie?.value, Redacted.value(token))
        const row = yield* session_row(session.id)
        const now = yield* now_ms
        // cookie and row end together (Max-Age in whole seconds, rounded down)
        assert.strictEqual(
          cookie?.options?.maxAge,
          `${Math.floor(((row?.expires_at.getTime() ?? 0) - now) / 1000)} seconds`,
        )
        assert.strictEqual(row?.expires_at.getTime(), now + AUTH_SESSION_LIFETIME_MS)
        assert.deepInclude(cookie?.options ?? {}, {
          httpOnly: true,
          secure: true,
          sameSite: "lax",
          path: "/",
        })
      }),
    )

    it.effect("a handler's own cookie (logout) is not overwritten by the refresh", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token } = yield* repo.create_session(owner.id)
        yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS + 1)
        const response = yield* request_with(
          Redacted.value(token),
          clear_session_cookie(HttpServerResponse.empty()),
        )
        assert.strictEqual(session_cookie(response)?.value, "")
      }),
    )

    it.effect("no cookie: 401 and nothing set; an unknown cookie: 401 and the cookie cleared", () =>
      Effect.gen(function* () {
        const missing = yield* request_with(undefined, ok)
        assert.strictEqual(missing.status, 401)
        assert.isUndefined(session_cookie(missing))
        const unknown = yield* request_with("A".repeat(43), ok)
        assert.strictEqual(unknown.status, 401)
        assert.strictEqual(session_cookie(unknown)?.value, "")
      }),
    )

    it.effect("SessionCookie sets the cookie's name and Secure flag", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token } = yield* repo.create_session(owner.id)
        yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS + 1)
        const response = yield* with_session(ok).pipe(
          Effect.provideService(
            HttpServerRequest.HttpServerRequest,
            HttpServerRequest.fromWeb(
              new Request("http://localhost/", { headers: { cookie: `sid=${Redacted.value(token)}` } }),
            ),
          ),
          Effect.provideService(SessionCookie, { name: "sid", secure: false }),
        )
        const cookie = Cookies.get(response.cookies, "sid").pipe(Option.getOrUndefined)
        assert.strictEqual(cookie?.value, Redacted.value(token))
        assert.strictEqual(cookie?.options?.secure, false)
      }),
    )
  })
}

report_skipped_postgres("with_session")
