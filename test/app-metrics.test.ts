import { request } from "node:http"
import { networkInterfaces } from "node:os"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { getMetricsFromIterator } from "prom2javascript"
import { another_instance, base_url, example_app, make_client } from "./support/app.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { nginx_available, reverse_proxy } from "./support/reverse-proxy.ts"

// GET /metrics of the example app: Prometheus text for a client on this
// machine or a signed-in admin, the 404 of an unknown path for anyone else.
// Who the client is, is the app's client-address logic's to say: tested
// directly, behind trusted and untrusted proxies (nginx when installed), and
// from the machine's own non-loopback address when it has one.

interface Answer {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly text: string
}

/** GET `path` from 127.0.0.1:`port`, from the local address `from`, with `headers` as given. */
const get = (port: number, path: string, options: { from?: string; host?: string; headers?: object } = {}) =>
  Effect.promise(
    () =>
      new Promise<Answer>((resolve, reject) => {
        const req = request(
          {
            host: options.host ?? "127.0.0.1",
            port,
            path,
            ...(options.from === undefined ? {} : { localAddress: options.from }),
            headers: { ...options.headers },
          },
          (response) => {
            let text = ""
            response.on("data", (chunk) => {
              text += chunk
            })
            response.on("end", () =>
              resolve({ status: response.statusCode ?? 0, headers: response.headers, text }),
            )
          },
        )
        req.on("error", reject)
        req.end()
      }),
  )

/** Every account's password here: long, uncommon, and no username's part. */
const PASSWORD = "a passphrase long enough"

const port_of = (base: string) => Number(new URL(base).port)
const app_port = Effect.map(base_url, port_of)

/** Prometheus text, with the app's headers on it. */
const assert_metrics = (answer: Answer, what: string) => {
  assert.strictEqual(answer.status, 200, what)
  assert.strictEqual(answer.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8", what)
  assert.include(String(answer.headers["content-security-policy"]), "default-src 'none'", what)
  assert.strictEqual(answer.headers["x-content-type-options"], "nosniff", what)
  assert.strictEqual(answer.headers["cache-control"], "no-store", what)
  return answer
}

/** An answer's Prometheus text, parsed by a maintained parser. */
const parsed = (answer: Answer) =>
  Effect.promise(() => getMetricsFromIterator(answer.text.split("\n").values()))

/** The 404 any unknown path gets: nothing says the endpoint exists. */
const assert_refused = (answer: Answer, what: string) => {
  assert.strictEqual(answer.status, 404, what)
  assert.deepStrictEqual(JSON.parse(answer.text), { error: "not found" }, what)
  assert.strictEqual(answer.headers["x-content-type-options"], "nosniff", what)
}

/**
 * A session cookie ("name=value") of `username`, signed up unless the
 * database has the account already; `admin` is an admin in every test app.
 */
const session_cookie = (base: string, username: string) =>
  Effect.gen(function* () {
    const client = make_client(base)
    const credentials = { username, password: PASSWORD }
    const signup = yield* client.call("POST", "/api/signup", credentials)
    if (signup.status === 409)
      assert.strictEqual((yield* client.call("POST", "/api/login", credentials)).status, 200)
    else assert.strictEqual(signup.status, 201)
    return client.cookie ?? ""
  })

/** The machine's first IPv4 address that is not loopback, if it has one. */
const outside_address = Object.values(networkInterfaces())
  .flat()
  .find((info) => info !== undefined && info.family === "IPv4" && !info.internal)?.address

for (const backend of backends) {
  layer(example_app(backend.name), { excludeTestServices: true })(
    `the example app's /metrics on ${backend.name}`,
    (it) => {
      it.effect("a loopback client gets Prometheus text: validations counted by outcome", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const client = make_client(base)
          yield* client.call("POST", "/api/signup", { username: "vera", password: "counted in the metrics" })
          for (let i = 0; i < 3; i++) assert.strictEqual((yield* client.call("GET", "/api/me")).status, 200)
          const forged = make_client(base)
          forged.cookie = `__Host-session=${"A".repeat(43)}`
          assert.strictEqual((yield* forged.call("GET", "/api/me")).status, 401)

          const metrics = yield* parsed(assert_metrics(yield* get(port_of(base), "/metrics"), "loopback"))
          const validations = metrics.session_validations_total
          assert.strictEqual(validations?.type, "counter")
          const by_outcome = new Map(
            ((validations?.data ?? []) as Array<{ labels: Record<string, string>; value: number }>).map(
              (sample) => [sample.labels.outcome, sample.value],
            ),
          )
          assert.isAtLeast(by_outcome.get("valid") ?? 0, 3)
          assert.isAtLeast(by_outcome.get("unknown") ?? 0, 1)
          // the lifecycle counters are there too
          assert.isDefined(metrics.session_events_total)
          // nothing secret: no token, no whole hash
          assert.notMatch(JSON.stringify(metrics), /[0-9a-f]{64}/)
        }),
      )

      it.effect("a forwarding header from a peer that is no trusted proxy makes the client not local", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const port = port_of(base)
          // behind an unknown proxy on this machine, every client would otherwise be 127.0.0.1
          for (const headers of [
            { "x-forwarded-for": "127.0.0.1" },
            { "x-real-ip": "127.0.0.1" },
            { forwarded: "for=127.0.0.1" },
          ]) {
            assert_refused(yield* get(port, "/metrics", { headers }), JSON.stringify(headers))
          }
          // an admin's session is enough wherever the request comes from
          const cookie = yield* session_cookie(base, "admin")
          assert_metrics(
            yield* get(port, "/metrics", { headers: { "x-forwarded-for": "127.0.0.1", cookie } }),
            "admin",
          )
        }),
      )

      it.layer(another_instance({ trusted_proxies: ["127.0.0.1"] }))(
        "behind a trusted proxy (TRUSTED_PROXIES=127.0.0.1, the test's own address)",
        (it) => {
          it.effect("the client the proxy names decides: a remote one needs an admin's session", () =>
            Effect.gen(function* () {
              const base = yield* base_url
              const port = port_of(base)
              const remote = { "x-forwarded-for": "203.0.113.7" }
              assert_refused(yield* get(port, "/metrics", { headers: remote }), "remote, no session")
              const user = yield* session_cookie(base, "walt")
              assert_refused(
                yield* get(port, "/metrics", { headers: { ...remote, cookie: user } }),
                "not an admin",
              )
              const stale = `__Host-session=${"B".repeat(43)}`
              assert_refused(
                yield* get(port, "/metrics", { headers: { ...remote, cookie: stale } }),
                "no session",
              )
              const admin = yield* session_cookie(base, "admin")
              assert_metrics(yield* get(port, "/metrics", { headers: { ...remote, cookie: admin } }), "admin")
              // the proxy reports a client on this machine
              assert_metrics(yield* get(port, "/metrics", { headers: { "x-forwarded-for": "::1" } }), "local")
              // the metrics page is no way past the admin check of the rest of the API
              const audit = yield* make_client(base).call("GET", "/api/admin/audit", undefined, undefined, {
                cookie: user,
              })
              assert.strictEqual(audit.status, 403)
            }),
          )
        },
      )

      if (outside_address !== undefined) {
        it.layer(another_instance({ host: outside_address }))(
          `listening on the machine's address ${outside_address}, reached from it`,
          (it) => {
            it.effect("a client at a non-loopback address is refused without an admin's session", () =>
              Effect.gen(function* () {
                const port = yield* app_port
                const host = outside_address
                assert_refused(yield* get(port, "/metrics", { host }), "no session")
                const admin = yield* session_cookie(`http://${host}:${port}`, "admin")
                assert_metrics(yield* get(port, "/metrics", { host, headers: { cookie: admin } }), "admin")
              }),
            )
          },
        )
      }
    },
  )
}

if (nginx_available) {
  layer(example_app("pglite"), { excludeTestServices: true })(
    "the example app's /metrics behind nginx",
    (it) => {
      it.effect("behind nginx the app was not told about, nobody is local", () =>
        Effect.gen(function* () {
          const proxy = yield* reverse_proxy(yield* app_port, "127.0.0.2")
          assert_refused(yield* get(proxy, "/metrics", { from: "127.0.0.3" }), "through an unknown proxy")
          assert_metrics(yield* get(yield* app_port, "/metrics", { from: "127.0.0.3" }), "direct")
        }),
      )

      // nginx connects from 127.0.0.2; 127.0.0.4 stands for an outer proxy of ours (a load balancer)
      it.layer(another_instance({ trusted_proxies: ["127.0.0.2", "127.0.0.4"] }))(
        "TRUSTED_PROXIES=127.0.0.2,127.0.0.4",
        (it) => {
          it.effect(
            "a client on this machine is local through nginx; one the outer proxy reports is not",
            () =>
              Effect.gen(function* () {
                const proxy = yield* reverse_proxy(yield* app_port, "127.0.0.2")
                assert_metrics(yield* get(proxy, "/metrics", { from: "127.0.0.3" }), "local through nginx")
                // what the client writes itself is not believed: nginx appends the address it saw
                assert_metrics(
                  yield* get(proxy, "/metrics", {
                    from: "127.0.0.3",
                    headers: { "x-forwarded-for": "203.0.113.9" },
                  }),
                  "a forged remote address",
                )
                const remote = { from: "127.0.0.4", headers: { "x-forwarded-for": "198.51.100.20" } }
                assert_refused(yield* get(proxy, "/metrics", remote), "remote through the outer proxy")
                const admin = yield* session_cookie(yield* base_url, "admin")
                assert_metrics(
                  yield* get(proxy, "/metrics", { ...remote, headers: { ...remote.headers, cookie: admin } }),
                  "an admin through the outer proxy",
                )
              }),
          )
        },
      )
    },
  )
}

report_skipped_postgres("the example app's /metrics")
