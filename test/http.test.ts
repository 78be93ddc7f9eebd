import { assert, layer } from "@effect/vitest"
import { eq } from "drizzle-orm"
import { Effect } from "effect"
import { AUTH_SESSION_LIFETIME_MS, auth_session } from "../src/index.ts"
import {
  another_instance,
  base_url,
  DEVICES,
  example_app,
  make_client,
  password_proven_ago,
} from "./support/app.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { on_db, session_row } from "./support/fixtures.ts"

const alice = { username: "alice", password: "correct horse battery" }
const { firefox_on_windows: firefox, safari_on_iphone: safari } = DEVICES

interface SessionView {
  readonly id: string
  readonly browser: string | null
  readonly os: string | null
  readonly ip: string | null
  readonly current: boolean
}

for (const backend of backends) {
  layer(example_app(backend.name), { excludeTestServices: true })(
    `the example app over HTTP on ${backend.name}`,
    (it) => {
      it.effect("sign-up → login → cookie → me → list → revoke → 401", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const laptop = make_client(base)
          const phone = make_client(base)

          const signup = yield* laptop.call("POST", "/api/signup", alice)
          assert.strictEqual(signup.status, 201)
          assert.isDefined(laptop.cookie)
          const login = yield* phone.call("POST", "/api/login", {
            username: "ALICE",
            password: alice.password,
          })
          assert.strictEqual(login.status, 200)

          const me = yield* phone.call("GET", "/api/me")
          assert.strictEqual(me.status, 200)
          assert.deepInclude(me.body.account as object, { username: "alice", admin: false })

          const listed = yield* phone.call("GET", "/api/sessions")
          const sessions = listed.body.sessions as Array<{ id: string; current: boolean }>
          assert.strictEqual(sessions.length, 2)
          const laptop_session = sessions.find((s) => !s.current)
          const phone_session = sessions.find((s) => s.current)
          assert.isDefined(laptop_session)
          assert.notInclude(JSON.stringify(listed.body), (laptop.cookie ?? "").split("=")[1] ?? "")

          // revoke the laptop from the phone: the laptop is signed out, its stale cookie cleared
          assert.strictEqual((yield* phone.call("DELETE", `/api/sessions/${laptop_session?.id}`)).status, 200)
          const stale = yield* laptop.call("GET", "/api/me")
          assert.strictEqual(stale.status, 401)
          assert.match(stale.set_cookie ?? "", /^__Host-session=;.*Max-Age=0/)

          // revoking its own session signs the phone out too, on the server: the old cookie is dead
          const phone_cookie = phone.cookie
          const own = yield* phone.call("DELETE", `/api/sessions/${phone_session?.id}`)
          assert.strictEqual(own.status, 200)
          assert.match(own.set_cookie ?? "", /Max-Age=0/)
          phone.cookie = phone_cookie
          assert.strictEqual((yield* phone.call("GET", "/api/me")).status, 401)
        }),
      )

      it.effect("the session cookie: HttpOnly, SameSite=Lax, Path=/, Max-Age until the session expires", () =>
        Effect.gen(function* () {
          const client = make_client(yield* base_url)
          const { set_cookie } = yield* client.call("POST", "/api/signup", {
            username: "carol",
            password: "twelve plus three chars",
          })
          const attributes = (set_cookie ?? "").split(/;\s*/)
          // __Host-: Secure, Path=/ and no Domain, or browsers refuse it
          assert.match(attributes[0] ?? "", /^__Host-session=[A-Za-z0-9_-]{43}$/)
          assert.include(attributes, "HttpOnly")
          assert.include(attributes, "SameSite=Lax")
          assert.include(attributes, "Path=/")
          assert.include(attributes, "Secure")
          assert.isUndefined(attributes.find((a) => /^Domain=/i.test(a)))
          const max_age = Number(attributes.find((a) => a.startsWith("Max-Age="))?.slice(8))
          assert.approximately(max_age, AUTH_SESSION_LIFETIME_MS / 1000, 5)
        }),
      )

      it.effect(
        "the device cookie: the account, a device id and a signature; HttpOnly, SameSite=Strict",
        () =>
          Effect.gen(function* () {
            const client = make_client(yield* base_url)
            const signup = yield* client.call("POST", "/api/signup", {
              username: "cora",
              password: "a device of her own",
            })
            const account_id = (signup.body.account as { id: string }).id
            const attributes = (signup.set_device_cookie ?? "").split(/;\s*/)
            const [, value = ""] = (attributes[0] ?? "").split("=")
            const [account, device, signature] = value.split(".")
            assert.match(attributes[0] ?? "", /^__Host-device=/)
            assert.strictEqual(account, account_id)
            assert.match(device ?? "", /^[A-Za-z0-9_-]{22}$/)
            assert.match(signature ?? "", /^[A-Za-z0-9_-]{43}$/)
            for (const attribute of [
              "HttpOnly",
              "Secure",
              "SameSite=Strict",
              "Path=/",
              `Max-Age=${180 * 86_400}`,
            ])
              assert.include(attributes, attribute)
            // a new device id at each sign-in, and logging out keeps the device cookie
            const login = yield* client.call("POST", "/api/login", {
              username: "cora",
              password: "a device of her own",
            })
            assert.notInclude(login.set_device_cookie ?? "", value)
            assert.isUndefined((yield* client.call("POST", "/api/logout")).set_device_cookie)
          }),
      )

      it.effect("the 6th login evicts the oldest session (default limit 5)", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const credentials = { username: "dave", password: "five sessions at most" }
          const first = make_client(base)
          yield* first.call("POST", "/api/signup", credentials)
          const later = []
          for (let i = 0; i < 5; i++) {
            const client = make_client(base)
            assert.strictEqual((yield* client.call("POST", "/api/login", credentials)).status, 200)
            later.push(client)
          }
          assert.strictEqual((yield* first.call("GET", "/api/me")).status, 401)
          for (const client of later) assert.strictEqual((yield* client.call("GET", "/api/me")).status, 200)
          const newest = later.at(-1)
          if (newest === undefined) return assert.fail("no clients")
          const listed = yield* newest.call("GET", "/api/sessions")
          assert.strictEqual((listed.body.sessions as Array<unknown>).length, 5)
        }),
      )

      it.effect("bad input gets a clear 4xx with a JSON error, never a 500", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const erin = make_client(base)
          yield* erin.call("POST", "/api/signup", { username: "erin", password: "bad input everywhere" })
          const mallory = make_client(base)
          yield* mallory.call("POST", "/api/signup", {
            username: "mallory",
            password: "an ill-meant visitor",
          })
          const erin_session = (
            (yield* erin.call("GET", "/api/sessions")).body.sessions as Array<{ id: string }>
          )[0]?.id
          const anonymous = make_client(base)
          const cases: Array<
            [string, Effect.Effect<{ status: number; body: Record<string, unknown> }>, number]
          > = [
            ["bad JSON", anonymous.call("POST", "/api/login", undefined, "{not json"), 400],
            ["missing fields", anonymous.call("POST", "/api/login", { username: "erin" }), 400],
            [
              "short password",
              anonymous.call("POST", "/api/signup", { username: "frank", password: "short" }),
              400,
            ],
            [
              "bad username",
              anonymous.call("POST", "/api/signup", { username: "a b", password: "twelve plus three chars" }),
              400,
            ],
            [
              "taken username",
              anonymous.call("POST", "/api/signup", {
                username: "ERIN",
                password: "twelve plus three chars",
              }),
              409,
            ],
            [
              "wrong password",
              anonymous.call("POST", "/api/login", { username: "erin", password: "wrong pass" }),
              401,
            ],
            [
              "unknown user",
              anonymous.call("POST", "/api/login", {
                username: "nobody",
                password: "twelve plus three chars",
              }),
              401,
            ],
            ["no cookie", anonymous.call("GET", "/api/me"), 401],
            ["unknown session id", erin.call("DELETE", `/api/sessions/${"0".repeat(64)}`), 404],
            ["malformed session id", erin.call("DELETE", "/api/sessions/x'--"), 404],
            ["someone else's session id", mallory.call("DELETE", `/api/sessions/${erin_session}`), 404],
            ["admin list as non-admin", erin.call("GET", "/api/admin/sessions"), 403],
            [
              "wrong current password",
              erin.call("POST", "/api/password", {
                current_password: "nope",
                new_password: "twelve plus three chars",
              }),
              403,
            ],
            ["password body", erin.call("POST", "/api/password", { new_password: 5 }), 400],
            [
              "wrong password to re-authenticate",
              erin.call("POST", "/api/reauthenticate", { password: "nope" }),
              403,
            ],
            ["re-authentication body", erin.call("POST", "/api/reauthenticate", { password: 5 }), 400],
            [
              "re-authentication without a session",
              anonymous.call("POST", "/api/reauthenticate", { password: "bad input everywhere" }),
              401,
            ],
          ]
          for (const [name, request, status] of cases) {
            const reply = yield* request
            assert.strictEqual(reply.status, status, name)
            assert.isString(reply.body.error, name)
          }
          // the IDOR attempt changed nothing
          assert.strictEqual((yield* erin.call("GET", "/api/me")).status, 200)
          // a forged cookie is rejected and cleared
          const forged = make_client(base)
          forged.cookie = `__Host-session=${"A".repeat(43)}`
          const reply = yield* forged.call("GET", "/api/me")
          assert.strictEqual(reply.status, 401)
          assert.match(reply.set_cookie ?? "", /Max-Age=0/)
        }),
      )

      it.effect("changing the password signs out the other sessions; logout ends this one", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const credentials = { username: "grace", password: "the first of two passwords" }
          const here = make_client(base)
          const elsewhere = make_client(base)
          yield* here.call("POST", "/api/signup", credentials)
          yield* elsewhere.call("POST", "/api/login", credentials)
          const before = here.cookie
          const changed = yield* here.call("POST", "/api/password", {
            current_password: credentials.password,
            new_password: "the second of two passwords",
          })
          assert.deepStrictEqual(changed.body, { revoked: 1 })
          assert.strictEqual((yield* elsewhere.call("GET", "/api/me")).status, 401)
          // this device goes on with a new token; the old one (stolen, say) is dead
          assert.notStrictEqual(here.cookie, before)
          assert.strictEqual((yield* here.call("GET", "/api/me")).status, 200)
          const stolen = make_client(base)
          stolen.cookie = before
          assert.strictEqual((yield* stolen.call("GET", "/api/me")).status, 401)
          const relogin = yield* make_client(base).call("POST", "/api/login", credentials)
          assert.strictEqual(relogin.status, 401)
          const here_cookie = here.cookie
          const logout = yield* here.call("POST", "/api/logout")
          assert.strictEqual(logout.status, 200)
          assert.match(logout.set_cookie ?? "", /Max-Age=0/)
          // the session is gone on the server, not only from the browser
          here.cookie = here_cookie
          assert.strictEqual((yield* here.call("GET", "/api/me")).status, 401)
        }),
      )

      it.effect("state-changing requests from other origins or as form posts are refused (CSRF)", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const victim = make_client(base)
          yield* victim.call("POST", "/api/signup", { username: "henry", password: "a forged form post" })
          const attacker = make_client(base)
          const form_login = yield* attacker.call(
            "POST",
            "/api/login",
            undefined,
            JSON.stringify({ username: "henry", password: "a forged form post" }),
            { "content-type": "text/plain" },
          )
          assert.strictEqual(form_login.status, 415)
          assert.isUndefined(form_login.set_cookie)
          const cross_site = yield* victim.call("POST", "/api/sessions/revoke-others", undefined, undefined, {
            "sec-fetch-site": "cross-site",
          })
          assert.strictEqual(cross_site.status, 403)
          const other_origin = yield* victim.call("POST", "/api/logout", undefined, undefined, {
            origin: "http://evil.example",
          })
          assert.strictEqual(other_origin.status, 403)
          const cross_site_reauthentication = yield* victim.call(
            "POST",
            "/api/reauthenticate",
            { password: "a forged form post" },
            undefined,
            { "sec-fetch-site": "cross-site" },
          )
          assert.strictEqual(cross_site_reauthentication.status, 403)
          assert.isUndefined(cross_site_reauthentication.set_cookie)
          assert.strictEqual((yield* victim.call("GET", "/api/me")).status, 200)
          const same_origin = yield* victim.call(
            "POST",
            "/api/sessions/revoke-others",
            undefined,
            undefined,
            {
              origin: base,
              "sec-fetch-site": "same-origin",
            },
          )
          assert.strictEqual(same_origin.status, 200)
        }),
      )

      it.effect("hostile bodies: NUL bytes and huge passwords are 4xx, never a 500", () =>
        Effect.gen(function* () {
          const client = make_client(yield* base_url)
          const cases: Array<[Record<string, string>, boolean]> = [
            // [body, rejected]: a NUL in a password is just a character
            [{ username: "\u0000", password: "twelve plus three chars" }, true],
            [{ username: "ivy", password: "\u0000".repeat(8) }, false],
            [{ username: "ivy2", password: "x".repeat(100_000) }, true],
          ]
          for (const [body, rejected] of cases) {
            for (const path of ["/api/login", "/api/signup"]) {
              const reply = yield* client.call("POST", path, body)
              const what = `${path} ${JSON.stringify(body).slice(0, 40)}`
              assert.isBelow(reply.status, 500, what)
              if (rejected) assert.isAtLeast(reply.status, 400, what)
            }
          }
        }),
      )

      it.effect("an extension is re-sent as a cookie even when the handler answers with an error", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const client = make_client(base)
          const signup = yield* client.call("POST", "/api/signup", {
            username: "jack",
            password: "an extended session",
          })
          const session_id = (signup.body.session as { id: string }).id
          // one hour left: inside the extend threshold
          yield* on_db((db) =>
            db
              .update(auth_session)
              .set({ expires_at: new Date(Date.now() + 3_600_000) })
              .where(eq(auth_session.id, session_id)),
          )
          const reply = yield* client.call("DELETE", `/api/sessions/${"0".repeat(64)}`)
          assert.strictEqual(reply.status, 404)
          const max_age = Number(/Max-Age=(\d+)/.exec(reply.set_cookie ?? "")?.[1])
          const row = yield* on_db((db) =>
            db.select().from(auth_session).where(eq(auth_session.id, session_id)),
          )
          const row_seconds = ((row[0]?.expires_at.getTime() ?? 0) - Date.now()) / 1000
          assert.approximately(max_age, row_seconds, 5)
          assert.isAbove(max_age, AUTH_SESSION_LIFETIME_MS / 1000 - 60)
        }),
      )

      it.effect(
        "two concurrent password changes with the same old password: one wins, the other gets 409",
        () =>
          Effect.gen(function* () {
            const base = yield* base_url
            const credentials = { username: "kate", password: "two tabs, one session" }
            // two tabs of one browser: same session, so revoking the others spares both
            const tab = make_client(base)
            yield* tab.call("POST", "/api/signup", credentials)
            const replies = yield* Effect.all(
              ["the first new password", "the second new password"].map((new_password) =>
                tab.call("POST", "/api/password", { current_password: credentials.password, new_password }),
              ),
              { concurrency: "unbounded" },
            )
            assert.deepStrictEqual(replies.map((reply) => reply.status).sort(), [200, 409])
            // exactly one new password works
            const logins = yield* Effect.all(
              ["the first new password", "the second new password"].map((password) =>
                make_client(base).call("POST", "/api/login", { username: "kate", password }),
              ),
            )
            assert.deepStrictEqual(logins.map((reply) => reply.status).sort(), [200, 401])
          }),
      )

      it.effect("the admin list shows every live session with its username, and ids only in part", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const admin = make_client(base)
          yield* admin.call(
            "POST",
            "/api/signup",
            { username: "admin", password: "keys to every session" },
            undefined,
            {
              "user-agent": firefox.user_agent,
            },
          )
          const listed = yield* admin.call("GET", "/api/admin/sessions")
          assert.strictEqual(listed.status, 200)
          const sessions = listed.body.sessions as Array<Omit<SessionView, "current"> & { username: string }>
          const own = sessions.find((s) => s.username === "admin")
          assert.deepInclude(own, { browser: firefox.browser, os: firefox.os, ip: "127.0.0.1" })
          for (const s of sessions) assert.match(s.id, /^[0-9a-f]{12}…$/)
        }),
      )

      it.effect(
        "my sessions show the device each was created on: browser and OS from its User-Agent, its IP",
        () =>
          Effect.gen(function* () {
            const base = yield* base_url
            const credentials = { username: "lena", password: "three devices listed" }
            const laptop = make_client(base)
            const phone = make_client(base)
            const odd = make_client(base)
            yield* laptop.call("POST", "/api/signup", credentials, undefined, {
              "user-agent": firefox.user_agent,
            })
            yield* phone.call("POST", "/api/login", credentials, undefined, {
              "user-agent": safari.user_agent,
            })
            // the User-Agent is the client's to write: markup in it is just an unknown browser
            yield* odd.call("POST", "/api/login", credentials, undefined, {
              "user-agent": "<img src=x onerror=alert(1)>",
            })
            const listed = yield* laptop.call("GET", "/api/sessions")
            const sessions = listed.body.sessions as Array<SessionView & Record<string, unknown>>
            assert.strictEqual(sessions.length, 3)
            assert.sameDeepMembers(
              sessions.map(({ browser, os, ip, current }) => ({ browser, os, ip, current })),
              [
                { browser: firefox.browser, os: firefox.os, ip: "127.0.0.1", current: true },
                { browser: safari.browser, os: safari.os, ip: "127.0.0.1", current: false },
                { browser: null, os: null, ip: "127.0.0.1", current: false },
              ],
            )
            assert.notInclude(JSON.stringify(listed.body), "onerror")
            for (const session of sessions) {
              for (const field of ["created_at", "last_seen_at", "expires_at"]) {
                assert.isFalse(Number.isNaN(Date.parse(String(session[field]))), field)
              }
            }
          }),
      )

      it.effect(
        "X-Forwarded-For is ignored by default: a client cannot choose the address its session records",
        () =>
          Effect.gen(function* () {
            const client = make_client(yield* base_url)
            yield* client.call(
              "POST",
              "/api/signup",
              { username: "mike", password: "a forged forwarded-for" },
              undefined,
              {
                "x-forwarded-for": "203.0.113.7",
              },
            )
            const sessions = (yield* client.call("GET", "/api/sessions")).body.sessions as Array<SessionView>
            assert.deepStrictEqual(
              sessions.map((s) => s.ip),
              ["127.0.0.1"],
            )
          }),
      )

      it.layer(another_instance({ trusted_proxies: ["127.0.0.1"] }))(
        "behind a trusted proxy (TRUSTED_PROXIES=127.0.0.1, the test's own address)",
        (it) => {
          it.effect(
            "a session records the address the proxy appended; without a valid one, the socket's",
            () =>
              Effect.gen(function* () {
                const base = yield* base_url
                const credentials = { username: "nina", password: "behind the trusted proxy" }
                yield* make_client(base).call("POST", "/api/signup", credentials)
                const recorded_ip = (forwarded: string | undefined) =>
                  make_client(base)
                    .call("POST", "/api/login", credentials, undefined, {
                      ...(forwarded === undefined ? {} : { "x-forwarded-for": forwarded }),
                    })
                    .pipe(Effect.map((reply) => (reply.body.session as SessionView).ip))
                const cases: Array<[string | undefined, string]> = [
                  ["203.0.113.7", "203.0.113.7"],
                  // the client wrote the left entry itself; the proxy appended the right one
                  ["198.51.100.1, 203.0.113.7", "203.0.113.7"],
                  ["2001:db8::1", "2001:db8::1"],
                  ["not-an-address", "127.0.0.1"],
                  ["203.0.113.7, 203.0.113.8'--", "127.0.0.1"],
                  [undefined, "127.0.0.1"],
                ]
                for (const [forwarded, expected] of cases) {
                  assert.strictEqual(yield* recorded_ip(forwarded), expected, String(forwarded))
                }
                // the session list shows what was recorded
                const client = make_client(base)
                yield* client.call("POST", "/api/login", credentials, undefined, {
                  "x-forwarded-for": "192.0.2.44",
                })
                const sessions = (yield* client.call("GET", "/api/sessions")).body
                  .sessions as Array<SessionView>
                assert.strictEqual(sessions.find((s) => s.current)?.ip, "192.0.2.44")
              }),
          )
        },
      )

      it.effect("signing out other devices needs the password proven in the last 10 minutes", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const credentials = { username: "olga", password: "sign the others out" }
          const here = make_client(base)
          const elsewhere = make_client(base)
          const signup = yield* here.call("POST", "/api/signup", credentials)
          yield* elsewhere.call("POST", "/api/login", credentials)
          const session_id = (signup.body.session as SessionView).id
          yield* password_proven_ago(session_id, 11)

          const stale = yield* here.call("POST", "/api/sessions/revoke-others")
          assert.strictEqual(stale.status, 403)
          assert.deepStrictEqual(stale.body, { error: "confirm your password first", reauthenticate: true })
          // nor one device at a time
          const listed = (yield* here.call("GET", "/api/sessions")).body.sessions as Array<SessionView>
          const other = listed.find((s) => !s.current)
          const one = yield* here.call("DELETE", `/api/sessions/${other?.id}`)
          assert.deepStrictEqual(one.body, { error: "confirm your password first", reauthenticate: true })
          assert.strictEqual((yield* elsewhere.call("GET", "/api/me")).status, 200)

          const wrong = yield* here.call("POST", "/api/reauthenticate", { password: "not olga's password" })
          assert.strictEqual(wrong.status, 403)
          assert.strictEqual((yield* here.call("POST", "/api/sessions/revoke-others")).status, 403)

          const before = here.cookie
          const proven = yield* here.call("POST", "/api/reauthenticate", credentials)
          assert.strictEqual(proven.status, 200)
          // a new token, as at a password change: one stolen before the proof is dead, not fresh
          assert.match(proven.set_cookie ?? "", /^__Host-session=[A-Za-z0-9_-]{43};/)
          assert.notStrictEqual(here.cookie, before)
          const stolen = make_client(base)
          stolen.cookie = before
          assert.strictEqual((yield* stolen.call("GET", "/api/me")).status, 401)
          assert.strictEqual((yield* stolen.call("POST", "/api/sessions/revoke-others")).status, 401)
          assert.isUndefined(yield* session_row(session_id))
          const renewed = (proven.body.session as SessionView).id
          assert.isAbove((yield* session_row(renewed))?.authenticated_at.getTime() ?? 0, Date.now() - 60_000)
          // the expiry restarted with the proof: the cookie is sent again
          const max_age = Number(/Max-Age=(\d+)/.exec(proven.set_cookie ?? "")?.[1])
          assert.approximately(max_age, AUTH_SESSION_LIFETIME_MS / 1000, 5)
          const revoked = yield* here.call("POST", "/api/sessions/revoke-others")
          assert.strictEqual(revoked.status, 200)
          assert.deepStrictEqual(revoked.body, { revoked: 1 })
          assert.strictEqual((yield* elsewhere.call("GET", "/api/me")).status, 401)
        }),
      )

      it.effect("changing the password proves it again: the session is fresh and its cookie re-sent", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const here = make_client(base)
          const signup = yield* here.call("POST", "/api/signup", {
            username: "paul",
            password: "proven eleven minutes ago",
          })
          const session_id = (signup.body.session as SessionView).id
          yield* password_proven_ago(session_id, 11)
          const changed = yield* here.call("POST", "/api/password", {
            current_password: "proven eleven minutes ago",
            new_password: "and proven again just now",
          })
          assert.strictEqual(changed.status, 200)
          assert.match(changed.set_cookie ?? "", /^__Host-session=[A-Za-z0-9_-]{43};/)
          // the same session under a new token (its id is the new token's hash)
          assert.isUndefined(yield* session_row(session_id))
          const current = (yield* here.call("GET", "/api/me")).body.session as SessionView
          const row = yield* session_row(current.id)
          assert.isAbove(row?.authenticated_at.getTime() ?? 0, Date.now() - 60_000)
          const other = make_client(base)
          yield* other.call("POST", "/api/login", { username: "paul", password: "and proven again just now" })
          assert.deepStrictEqual((yield* here.call("POST", "/api/sessions/revoke-others")).body, {
            revoked: 1,
          })
        }),
      )
    },
  )
}

report_skipped_postgres("the example app over HTTP")
