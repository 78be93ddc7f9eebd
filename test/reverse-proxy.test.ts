import { request } from "node:http"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { forwarded_client, parse_trusted_proxies } from "../examples/app/client-address.ts"
import { another_instance, base_url, example_app } from "./support/app.ts"
import { NGINX, nginx_available, reverse_proxy } from "./support/reverse-proxy.ts"

// TRUSTED_PROXIES: X-Forwarded-For is believed from the configured proxies
// only. Tested behind Debian's nginx, started here: the proxy connects to the
// app from 127.0.0.2 (trusted), clients from other loopback addresses.

if (!nginx_available && process.env.REQUIRE_PROXY === "1") {
  throw new Error(`REQUIRE_PROXY=1 but there is no nginx at ${NGINX}`)
}
if (!nginx_available) console.warn(`[reverse-proxy] SKIPPED: no nginx at ${NGINX} (apt-get install nginx)`)

describe("the client address behind trusted proxies", () => {
  it("walks X-Forwarded-For from the right while the address at hand is a trusted proxy", () => {
    const proxies = parse_trusted_proxies(["127.0.0.2", " 10.0.0.0/8", "::1", "2001:db8:aa::/48", ""])
    const cases: Array<[string | undefined, string | undefined, string | undefined]> = [
      // [socket peer, X-Forwarded-For, client]
      ["203.0.113.1", "198.51.100.1", "203.0.113.1"],
      ["127.0.0.2", "198.51.100.1", "198.51.100.1"],
      ["127.0.0.2", "198.51.100.1, 10.1.2.3", "198.51.100.1"],
      ["127.0.0.2", "10.1.2.3, 198.51.100.1", "198.51.100.1"],
      ["127.0.0.2", "10.1.2.3, 10.4.5.6", "10.1.2.3"],
      ["127.0.0.2", undefined, "127.0.0.2"],
      // IPv4-mapped, as a dual-stack socket reports IPv4 peers
      ["::ffff:127.0.0.2", "198.51.100.1", "198.51.100.1"],
      ["::1", "2001:db8:0:0::7", "2001:db8::7"],
      ["2001:db8:aa:1::5", "2001:db8:bb::1, 2001:db8:aa:ffff::9", "2001:db8:bb::1"],
      ["2001:db8:ab::5", "198.51.100.1", "2001:db8:ab::5"],
      // a malformed entry ends the walk at the proxy that wrote it
      ["127.0.0.2", "198.51.100.1, not-an-address", "127.0.0.2"],
      ["127.0.0.2", "198.51.100.1, 0x7f.1", "127.0.0.2"],
      [undefined, "198.51.100.1", undefined],
    ]
    for (const [peer, forwarded_for, client] of cases) {
      assert.strictEqual(forwarded_client(peer, forwarded_for, proxies), client, `${peer} ${forwarded_for}`)
    }
    // none trusted: the header says nothing
    assert.strictEqual(forwarded_client("127.0.0.2", "198.51.100.1", []), "127.0.0.2")
  })

  it("refuses an entry that is neither an address nor a CIDR range", () => {
    for (const entry of ["10.0.0.0/33", "localhost", "0x7f.1", "127.0.0.1/", "::1/129", "1"]) {
      assert.throws(() => parse_trusted_proxies([entry]), /not an IP address or CIDR range/, entry)
    }
  })
})

interface Answer {
  readonly status: number
  readonly body: Record<string, unknown>
}

/** A JSON POST to 127.0.0.1:`port` from the local address `from`. */
const post = (
  port: number,
  from: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
) =>
  Effect.promise(
    () =>
      new Promise<Answer>((resolve, reject) => {
        const req = request(
          {
            host: "127.0.0.1",
            port,
            path,
            method: "POST",
            localAddress: from,
            headers: { "content-type": "application/json", ...headers },
          },
          (response) => {
            let text = ""
            response.on("data", (chunk) => {
              text += chunk
            })
            response.on("end", () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }))
          },
        )
        req.on("error", reject)
        req.end(JSON.stringify(body))
      }),
  )

const recorded_ip = (answer: Answer) => (answer.body.session as { ip: string | null } | undefined)?.ip

const app_port = Effect.map(base_url, (base) => Number(new URL(base).port))

if (nginx_available) {
  layer(example_app("pglite"), { excludeTestServices: true })("the example app behind nginx", (it) => {
    // nginx connects from 127.0.0.2; 127.0.0.4 stands for an outer proxy of ours (a load balancer)
    it.layer(another_instance({ trusted_proxies: ["127.0.0.2", "127.0.0.4/32"] }))(
      "TRUSTED_PROXIES=127.0.0.2,127.0.0.4/32",
      (it) => {
        it.effect(
          "a session records the client's address as nginx saw it; what the client wrote is ignored",
          () =>
            Effect.gen(function* () {
              const proxy = yield* reverse_proxy(yield* app_port, "127.0.0.2")
              const credentials = { username: "nora", password: "a long way through the proxy" }
              const signup = yield* post(proxy, "127.0.0.3", "/api/signup", credentials)
              assert.strictEqual(signup.status, 201)
              assert.strictEqual(recorded_ip(signup), "127.0.0.3")
              const cases: Array<[string, Record<string, string>, string]> = [
                // [client's address, headers it sends, address recorded]
                ["127.0.0.3", { "x-forwarded-for": "203.0.113.9" }, "127.0.0.3"],
                ["127.0.0.3", { "x-forwarded-for": "127.0.0.2" }, "127.0.0.3"],
                ["127.0.0.5", {}, "127.0.0.5"],
                // the outer proxy of ours reports its client, and that is believed
                ["127.0.0.4", { "x-forwarded-for": "198.51.100.20" }, "198.51.100.20"],
              ]
              for (const [from, headers, ip] of cases) {
                const login = yield* post(proxy, from, "/api/login", credentials, headers)
                assert.strictEqual(login.status, 200, `${from} ${JSON.stringify(headers)}`)
                assert.strictEqual(recorded_ip(login), ip, `${from} ${JSON.stringify(headers)}`)
              }
            }),
        )

        it.effect("behind nginx, one client's wrong passwords slow down that client, not the others", () =>
          Effect.gen(function* () {
            const proxy = yield* reverse_proxy(yield* app_port, "127.0.0.2")
            const credentials = { username: "otto", password: "another long way in" }
            assert.strictEqual((yield* post(proxy, "127.0.0.3", "/api/signup", credentials)).status, 201)
            const wrong = { username: "otto", password: "a wrong guess at it" }
            const statuses: Array<number> = []
            for (let i = 0; i < 7; i++) {
              // each with a new forged address: nginx appends the real one, which counts
              const headers = { "x-forwarded-for": `203.0.113.${i + 1}` }
              statuses.push((yield* post(proxy, "127.0.0.6", "/api/login", wrong, headers)).status)
            }
            assert.deepStrictEqual(statuses, [401, 401, 401, 401, 401, 429, 429])
            assert.strictEqual((yield* post(proxy, "127.0.0.7", "/api/login", credentials)).status, 200)
          }),
        )

        it.effect("reached directly, past the proxy, a forged X-Forwarded-For is ignored", () =>
          Effect.gen(function* () {
            const port = yield* app_port
            const credentials = { username: "pia", password: "straight to the app" }
            const signup = yield* post(port, "127.0.0.8", "/api/signup", credentials, {
              "x-forwarded-for": "198.51.100.30",
            })
            assert.strictEqual(signup.status, 201)
            assert.strictEqual(recorded_ip(signup), "127.0.0.8")
            // 30 wrong passwords, each claiming another address: all count for the socket's
            const statuses: Array<number> = []
            for (let i = 0; i < 30; i++) {
              const forged = { "x-forwarded-for": `198.51.100.${i + 1}` }
              const wrong = { username: "pia", password: `wrong guess number ${i}` }
              statuses.push((yield* post(port, "127.0.0.9", "/api/login", wrong, forged)).status)
            }
            // believed, each forged address would have been a first try: 30 times 401
            assert.deepStrictEqual(statuses.slice(0, 6), [401, 401, 401, 401, 401, 429])
            // the waits double from 1 s: on a slow machine one may end during the run, and
            // the attempt after it is checked (401) before the next, longer wait begins
            const later = statuses.slice(6)
            assert.isTrue(
              later.every((status) => status === 429 || status === 401),
              JSON.stringify(statuses),
            )
            assert.isAtMost(later.filter((status) => status === 401).length, 3, JSON.stringify(statuses))
          }),
        )
      },
    )
  })
}
