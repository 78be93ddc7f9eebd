import { inspect } from "node:util"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Option, Redacted } from "effect"
import { Cookies, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import {
  CurrentSession,
  clear_session_cookie,
  session_cookie as cookie_for,
  SECURE_SESSION_COOKIE_NAME,
  SessionCookie,
  session_middleware,
  set_session_cookie,
  with_session,
} from "../src/http.ts"
import { AUTH_SESSION_EXTEND_THRESHOLD_MS, AUTH_SESSION_LIFETIME_MS, SessionRepo } from "../src/index.ts"
import { user_session } from "./support/app-tables.ts"
import { backends, on_table, report_skipped_postgres } from "./support/backends.ts"
import { create_account, now_ms, session_row } from "./support/fixtures.ts"
import { make_recorder } from "./support/recorder.ts"
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

    it.effect(
      "CurrentSession's token is the cookie's, redacted, and shows in no inspection of the session",
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const owner = yield* create_account()
          const raw = Redacted.value((yield* repo.create_session(owner.id)).token)
          const seen: Array<string> = []
          const response = yield* request_with(
            raw,
            CurrentSession.useSync((current) => {
              seen.push(
                inspect(current, { showHidden: true, depth: 5 }),
                JSON.stringify(current),
                String(current),
              )
              seen.push(inspect(current.token), JSON.stringify(current.token), String(current.token))
              assert.strictEqual(Redacted.value(current.token), raw)
              return HttpServerResponse.jsonUnsafe({ ok: true })
            }),
          )
          assert.strictEqual(response.status, 200)
          assert.lengthOf(seen, 6)
          for (const shown of seen) assert.notInclude(shown, raw)
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

    it.effect(
      "the default cookie is __Host-session, Secure, Path=/, no Domain; session_cookie picks the name",
      () =>
        Effect.gen(function* () {
          assert.deepStrictEqual(SessionCookie.defaultValue(), { name: "__Host-session", secure: true })
          assert.deepStrictEqual(cookie_for({ secure: false }), { name: "session", secure: false })
          const set = yield* set_session_cookie(
            "A".repeat(43),
            new Date((yield* now_ms) + 60_000),
          )(HttpServerResponse.empty())
          const cookie = Cookies.get(set.cookies, "__Host-session").pipe(Option.getOrUndefined)
          assert.deepInclude(cookie?.options ?? {}, { secure: true, path: "/" })
          assert.isUndefined(cookie?.options?.domain)
          // a __Host- cookie without Secure would be dropped by the browser: a defect, not a silent failure
          const exit = yield* Effect.exit(
            set_session_cookie(
              "A".repeat(43),
              new Date(),
            )(HttpServerResponse.empty()).pipe(
              Effect.provideService(SessionCookie, { name: "__Host-session", secure: false }),
            ),
          )
          assert.isTrue(exit._tag === "Failure")
        }),
    )

    it.effect("several session cookies: a planted one neither swaps the user nor signs them out", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const victim = yield* repo.create_session((yield* create_account()).id)
        const attacker = yield* repo.create_session((yield* create_account()).id)
        const victim_token = Redacted.value(victim.token)
        const whoami = CurrentSession.useSync((current) => HttpServerResponse.text(current.session.id))
        const body = (response: HttpServerResponse.HttpServerResponse) =>
          new TextDecoder().decode((response.body as unknown as { body: Uint8Array }).body)
        // a garbage or unknown cookie first: ignored, the user's own session serves
        for (const planted of ["garbage", "A".repeat(43)]) {
          const response = yield* request_with([planted, victim_token], whoami)
          assert.strictEqual(response.status, 200)
          assert.strictEqual(body(response), victim.session.id)
          assert.isUndefined(session_cookie(response), "the user's cookie was cleared")
        }
        // several cookies, none valid: 401, but nothing cleared (that could be the user's own cookie)
        const none_valid = yield* request_with(["A".repeat(43), "B".repeat(43), "garbage"], whoami)
        assert.strictEqual(none_valid.status, 401)
        assert.isUndefined(session_cookie(none_valid))
        // garbage values never take the places real tokens need
        const crowded = yield* request_with(["x", "y", "z", "w", "v", victim_token], whoami)
        assert.strictEqual(body(crowded), victim.session.id)
        // the attacker's valid session first: refused, not served as the attacker
        const swapped = yield* request_with([Redacted.value(attacker.token), victim_token], whoami)
        assert.strictEqual(swapped.status, 401)
        assert.isUndefined(session_cookie(swapped), "a cookie was cleared")
        // nothing revoked: the user's session still works on its own
        assert.strictEqual((yield* request_with(victim_token, whoami)).status, 200)
        // two sessions of one account (e.g. a stale cookie on another path): the first valid one serves
        const second = yield* repo.create_session(victim.session.account_id)
        const same = yield* request_with([Redacted.value(second.token), victim_token], whoami)
        assert.strictEqual(body(same), second.session.id)
      }),
    )

    it.effect("rotate: a new token for the same session; the old token stops working at once", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const { token, session } = yield* repo.create_session((yield* create_account()).id)
        const rotated = yield* repo.rotate(token)
        assert.notStrictEqual(Redacted.value(rotated.token), Redacted.value(token))
        assert.deepStrictEqual({ ...rotated.session, id: session.id }, session)
        assert.strictEqual((yield* Effect.flip(repo.authenticate(token))).reason, "unknown")
        assert.strictEqual((yield* repo.authenticate(rotated.token)).session.id, rotated.session.id)
        assert.strictEqual((yield* Effect.flip(repo.rotate(token))).reason, "unknown")
      }),
    )
  })
}

for (const backend of backends) {
  layer(backend.layer)(`session_middleware on ${backend.name}`, (it) => {
    /** A router of two routes behind the middleware, on `repo`, answering one request. */
    const ask = (repo: Layer.Layer<SessionRepo>, cookie: string | undefined, path: string) =>
      Effect.gen(function* () {
        const logs = make_recorder()
        const routes = Layer.mergeAll(
          HttpRouter.add(
            "GET",
            "/me",
            CurrentSession.useSync(({ session }) => HttpServerResponse.jsonUnsafe({ id: session.id })),
          ),
          HttpRouter.add(
            "GET",
            "/account",
            CurrentSession.useSync(({ session }) =>
              HttpServerResponse.jsonUnsafe({ account_id: session.account_id }),
            ),
          ),
        ).pipe(
          Layer.provide(session_middleware.layer),
          Layer.provide(repo),
          // in the app's context: the router's requests log through it
          Layer.provideMerge(logs.layer),
        )
        const web = HttpRouter.toWebHandler(routes, { disableLogger: true })
        yield* Effect.addFinalizer(() => Effect.promise(() => web.dispose()))
        const response = yield* Effect.promise(() =>
          web.handler(
            new Request(
              `http://localhost${path}`,
              cookie === undefined ? {} : { headers: { cookie: `${SECURE_SESSION_COOKIE_NAME}=${cookie}` } },
            ),
          ),
        )
        return {
          status: response.status,
          body: yield* Effect.promise(() => response.text()),
          retry_after: response.headers.get("retry-after"),
          logs: logs.logs,
        }
      })

    it.effect("gives every route it wraps the session; without one, 401", () =>
      Effect.gen(function* () {
        // the router serves on the real clock
        yield* TestClock.setTime(Date.now())
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { token, session } = yield* repo.create_session(owner.id)
        const this_repo = Layer.succeed(SessionRepo, repo)
        const me = yield* ask(this_repo, Redacted.value(token), "/me")
        assert.deepStrictEqual([me.status, JSON.parse(me.body)], [200, { id: session.id }])
        const account = yield* ask(this_repo, Redacted.value(token), "/account")
        assert.deepStrictEqual(JSON.parse(account.body), { account_id: owner.id })
        assert.strictEqual((yield* ask(this_repo, undefined, "/me")).status, 401)
        assert.strictEqual((yield* ask(this_repo, "x".repeat(43), "/account")).status, 401)
      }).pipe(Effect.scoped),
    )

    it.effect("a DbError while validating is logged and answered 503 with Retry-After", () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        const owner = yield* create_account()
        const { token } = yield* (yield* SessionRepo).create_session(owner.id)
        // a repo on a table this database lacks: every validation fails on the database
        const broken = on_table(user_session)(SessionRepo.use(Effect.succeed)).pipe(
          Effect.map((repo) => Layer.succeed(SessionRepo, repo)),
        )
        const answer = yield* ask(yield* broken, Redacted.value(token), "/me")
        assert.strictEqual(answer.status, 503)
        assert.strictEqual(answer.retry_after, "1")
        assert.isTrue(
          answer.logs.some(
            (line) => line.includes("session validation failed") && line.includes("undefined_table"),
          ),
        )
        assert.notInclude(answer.logs.join("\n"), Redacted.value(token))
      }).pipe(Effect.scoped),
    )
  })
}

report_skipped_postgres("with_session")
