import { connect } from "node:net"
import { assert, describe, it, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { loggable_path } from "../examples/app/request-log.ts"
import { security_headers } from "../examples/app/security-headers.ts"
import { admin_client } from "./support/admin.ts"
import { another_instance, base_url, example_app, make_client } from "./support/app.ts"
import { backends, report_skipped_postgres, server_url } from "./support/backends.ts"
import { on_db } from "./support/fixtures.ts"

// The example app's response headers, origin check and body limit: what a
// reviewer probes with curl.

/** A raw request to the app, headers as given (fetch would not send a forged Host). */
const send = (base: string, path: string, init: RequestInit = {}) =>
  Effect.promise(async () => {
    const response = await fetch(base + path, init)
    const text = await response.text()
    return { status: response.status, headers: response.headers, text }
  })

/** The bytes of one request written to the app's socket as they are, and the answer as Node's client parses it. */
const send_raw = (base: string, request: string) =>
  Effect.callback<{ status: number; headers: Headers; text: string }>((resume) => {
    const socket = connect(Number(new URL(base).port), "127.0.0.1")
    const chunks: Array<Buffer> = []
    socket.on("data", (chunk) => chunks.push(chunk))
    // the app may close before reading all of it: what it answered is still read
    socket.on("error", () => {})
    socket.on("close", () => {
      const [head = "", text = ""] = Buffer.concat(chunks).toString("latin1").split("\r\n\r\n", 2)
      const [status_line = "", ...lines] = head.split("\r\n")
      const headers = new Headers(lines.map((line) => line.split(/:\s*/, 2) as [string, string]))
      resume(Effect.succeed({ status: Number(status_line.split(" ")[1]), headers, text }))
    })
    socket.end(request)
  })

/** The headers every answer of the app carries. */
const assert_security_headers = ({ status, headers }: { status: number; headers: Headers }) => {
  const policy = headers.get("content-security-policy") ?? ""
  assert.include(policy, "script-src 'self'", `status ${status}`)
  assert.include(policy, "frame-ancestors 'none'", `status ${status}`)
  assert.notInclude(policy, "unsafe-inline")
  assert.strictEqual(headers.get("x-content-type-options"), "nosniff", `status ${status}`)
  assert.strictEqual(headers.get("referrer-policy"), "no-referrer", `status ${status}`)
  assert.strictEqual(headers.get("cache-control"), "no-store", `status ${status}`)
  assert.match(headers.get("strict-transport-security") ?? "", /max-age=\d+/, `status ${status}`)
}

const json_post = (body: string, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body,
})

describe("security_headers", () => {
  it.effect("HSTS only when asked (the cookie is Secure)", () =>
    Effect.gen(function* () {
      const hsts = (enabled: boolean) =>
        Effect.acquireUseRelease(
          Effect.sync(() =>
            HttpRouter.toWebHandler(
              Layer.mergeAll(
                HttpRouter.add("GET", "/", HttpServerResponse.text("ok")),
                security_headers({ hsts: enabled }),
              ),
              { disableLogger: true },
            ),
          ),
          ({ handler }) =>
            Effect.promise(() => handler(new Request("http://localhost/"))).pipe(
              Effect.map((response) => response.headers.get("strict-transport-security")),
            ),
          ({ dispose }) => Effect.promise(dispose),
        )
      assert.match((yield* hsts(true)) ?? "", /^max-age=31536000/)
      assert.isNull(yield* hsts(false))
    }),
  )
})

describe("the request log's path", () => {
  it("a session id is cut to its prefix, a token-like segment is redacted, the query string left out", () => {
    const id = "ab".repeat(32)
    assert.strictEqual(loggable_path(`/api/sessions/${id}`), "/api/sessions/abababab…")
    assert.strictEqual(loggable_path(`/api/sessions/${"A".repeat(43)}`), "/api/sessions/[redacted]")
    assert.strictEqual(loggable_path("/api/me?token=secret"), "/api/me?…")
    assert.strictEqual(loggable_path("/api/sessions/revoke-others"), "/api/sessions/revoke-others")
  })

  it("anything token-shaped is redacted wherever it stands, not only as a whole segment", () => {
    const token = "Ab1_-".repeat(8).concat("xyz")
    const id = "cd".repeat(32)
    const cases: Array<[string, string]> = [
      [`/x;${token}`, "/x;[redacted]"],
      [`/${token},x`, "/[redacted],x"],
      [`/x:${token}`, "/x:[redacted]"],
      [`/a=${token}`, "/a=[redacted]"],
      [`/api/sessions/x${token}`, "/api/sessions/[redacted]"],
      // percent-escaped, character by character
      [`/${[...token].map((c) => `%${c.charCodeAt(0).toString(16)}`).join("")}`, "/[redacted]"],
      [`/v.${id}.json`, "/v.cdcdcdcd….json"],
      [`/${id}${id}`, "/[redacted]"],
    ]
    for (const [path, logged] of cases) assert.strictEqual(loggable_path(path), logged, path)
  })
})

for (const backend of backends) {
  layer(example_app(backend.name), { excludeTestServices: true })(
    `the example app's headers and checks on ${backend.name}`,
    (it) => {
      it.effect("every response: CSP without unsafe-inline, no framing, nosniff, no-store, HSTS", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const page = yield* send(base, "/")
          const json = yield* send(base, "/api/me")
          const missing = yield* send(base, "/no-such-route")
          const script = yield* send(base, "/app.js")
          for (const reply of [page, json, missing, script]) assert_security_headers(reply)
          assert.strictEqual(json.status, 401)
          // the page carries no inline script or style for the policy to block
          assert.notMatch(page.text, /<script>|<style>|\son[a-z]+=/i)
          assert.include(page.text, '<script src="/app.js"')
          assert.strictEqual(script.headers.get("content-type"), "text/javascript; charset=utf-8")
        }),
      )

      it.effect("the router's and Node's own answers carry the headers too, with a JSON error", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const cases: Array<
            [string, Effect.Effect<{ status: number; headers: Headers; text: string }>, number]
          > = [
            // paths the router cannot decode: no route, not even a catch-all, sees them
            ["GET /%ZZ", send(base, "/%ZZ"), 404],
            ["DELETE /api/sessions/%ZZ", send(base, "/api/sessions/%ZZ", { method: "DELETE" }), 404],
            ["a route asked with another method", send(base, "/api/login"), 404],
            ["an unknown path", send(base, "/no/such/path"), 404],
            ["a body over 16 KiB", send(base, "/api/login", json_post("x".repeat(20_000))), 413],
            ["a body that is not JSON", send(base, "/api/login", { method: "POST", body: "{}" }), 415],
            // Node's own answers, before any route: headers over its 16 KiB limit, a broken header line
            [
              "headers over Node's limit",
              send_raw(base, `GET /api/me HTTP/1.1\r\nHost: x\r\nx-big: ${"x".repeat(20_000)}\r\n\r\n`),
              431,
            ],
            [
              "a header line without a colon",
              send_raw(base, "GET / HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n"),
              400,
            ],
          ]
          for (const [name, request, status] of cases) {
            const reply = yield* request
            assert.strictEqual(reply.status, status, name)
            assert_security_headers(reply)
            assert.isString(JSON.parse(reply.text).error, name)
          }
        }),
      )

      it.effect(
        "the Origin must be the app's own, scheme and port included; the Host header proves nothing",
        () =>
          Effect.gen(function* () {
            const base = yield* base_url
            const port = new URL(base).port
            const body = JSON.stringify({ username: "origin-user", password: "origin password" })
            const refused = [
              { origin: "http://evil.example", host: "evil.example" },
              { origin: `https://127.0.0.1:${port}` },
              { origin: "http://127.0.0.1:1" },
              { origin: "null" },
            ]
            for (const headers of refused) {
              const reply = yield* send(base, "/api/signup", json_post(body, headers))
              assert.strictEqual(reply.status, 403, JSON.stringify(headers))
            }
            const same = yield* send(
              base,
              "/api/signup",
              json_post(body, { origin: `http://localhost:${port}` }),
            )
            assert.strictEqual(same.status, 201)
          }),
      )

      it.effect("a login carrying several session cookies revokes them all, a planted one's included", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const victim = make_client(base)
          const attacker = make_client(base)
          yield* victim.call("POST", "/api/signup", { username: "tossed", password: "planted cookie victim" })
          yield* attacker.call("POST", "/api/signup", {
            username: "tosser",
            password: "planted cookie thrower",
          })
          const [victim_old, planted] = [victim.cookie ?? "", attacker.cookie ?? ""]
          const both = make_client(base)
          both.cookie = `${planted}; ${victim_old}`
          // the two sessions belong to different accounts: refused, not served as either
          assert.strictEqual((yield* both.call("GET", "/api/me")).status, 401)
          const login = yield* both.call("POST", "/api/login", {
            username: "tossed",
            password: "planted cookie victim",
          })
          assert.strictEqual(login.status, 200)
          for (const old of [victim_old, planted]) {
            const client = make_client(base)
            client.cookie = old
            assert.strictEqual((yield* client.call("GET", "/api/me")).status, 401)
          }
          assert.strictEqual((yield* both.call("GET", "/api/me")).status, 200)
        }),
      )

      it.effect("ADMIN_USERNAMES match regardless of case, as usernames are unique regardless of case", () =>
        Effect.gen(function* () {
          const client = make_client(yield* base_url)
          yield* client.call("POST", "/api/signup", { username: "ADMIN", password: "keys to every session" })
          assert.deepInclude((yield* client.call("GET", "/api/me")).body.account as object, { admin: true })
          assert.strictEqual((yield* client.call("GET", "/api/admin/sessions")).status, 200)
        }),
      )

      it.effect("a body over the limit is 413, not 400", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const huge = JSON.stringify({ username: "x", password: "p".repeat(20_000) })
          const reply = yield* send(base, "/api/login", json_post(huge))
          assert.strictEqual(reply.status, 413)
          assert.deepStrictEqual(JSON.parse(reply.text), { error: "the body is too large" })
        }),
      )

      it.layer(another_instance({ app_origin: "https://app.example.com", cookie_secure: false }))(
        "with APP_ORIGIN and COOKIE_SECURE=false",
        (it) => {
          it.effect("only APP_ORIGIN passes; the cookie is a plain `session` without Secure", () =>
            Effect.gen(function* () {
              const base = yield* base_url
              const body = JSON.stringify({ username: "proxied", password: "behind app.example.com" })
              const local = yield* send(
                base,
                "/api/signup",
                json_post(body, { origin: new URL(base).origin }),
              )
              assert.strictEqual(local.status, 403)
              const client = make_client(base)
              const signup = yield* client.call("POST", "/api/signup", JSON.parse(body), undefined, {
                origin: "https://app.example.com",
              })
              assert.strictEqual(signup.status, 201)
              assert.match(signup.set_cookie ?? "", /^session=/)
              assert.notMatch(signup.set_cookie ?? "", /Secure/)
            }),
          )
        },
      )
    },
  )
}

const postgres = backends.find((backend) => backend.name === "postgres")
if (postgres !== undefined) {
  layer(example_app("postgres"), { excludeTestServices: true })(
    "the example app with its database down",
    (it) => {
      it.effect("logout clears the cookie and answers 503, saying the session lives on", () =>
        Effect.gen(function* () {
          const client = make_client(yield* base_url)
          yield* client.call("POST", "/api/signup", {
            username: "offline",
            password: "the database went away",
          })
          const cookie = client.cookie
          const [row] = yield* on_db((db) => db.execute(sql`SELECT current_database() AS name`)).pipe(
            Effect.map((result) => (result as unknown as { rows: Array<{ name: string }> }).rows),
          )
          const name = row?.name ?? ""
          const admin = yield* Effect.promise(() => admin_client(server_url as string))
          const allow = (yes: boolean) =>
            Effect.promise(() => admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS ${yes}`))
          // the database refuses connections, and the pool's are cut
          yield* allow(false)
          yield* Effect.promise(() =>
            admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name]),
          )
          const logout = yield* client.call("POST", "/api/logout").pipe(Effect.ensuring(allow(true)))
          yield* Effect.promise(() => admin.end())
          assert.strictEqual(logout.status, 503)
          assert.match(String(logout.body.error), /could not end the session/)
          assert.match(logout.set_cookie ?? "", /Max-Age=0/)
          // and indeed it lives on
          client.cookie = cookie
          assert.strictEqual((yield* client.call("GET", "/api/me")).status, 200)
        }),
      )
    },
  )
}

report_skipped_postgres("the example app's headers and checks")
