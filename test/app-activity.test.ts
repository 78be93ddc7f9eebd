import { assert, layer } from "@effect/vitest"
import { eq } from "drizzle-orm"
import { Effect } from "effect"
import { auth_session } from "../src/index.ts"
import { base_url, DEVICES, example_app, make_client } from "./support/app.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { on_db } from "./support/fixtures.ts"

// The example app's "Recent activity" and the admin's audit log, over HTTP:
// the library's audit table as the app puts it in words.

const { firefox_on_windows: firefox, safari_on_iphone: safari } = DEVICES
const on_firefox = `${firefox.browser} on ${firefox.os} (127.0.0.1)`
const on_safari = `${safari.browser} on ${safari.os} (127.0.0.1)`

interface Activity {
  readonly at: string
  readonly kind: string
  readonly text: string
}

interface AuditRow {
  readonly at: string
  readonly account: string | null
  readonly kind: string
  readonly reason: string | null
  readonly count: number
  readonly session: string | null
  readonly browser: string | null
  readonly os: string | null
  readonly ip: string | null
  readonly text: string
}

/** Every account's password here: long, uncommon, and no username's part. */
const PASSWORD = "a passphrase long enough"

type Client = ReturnType<typeof make_client>

const activity_of = (client: Client) =>
  Effect.map(client.call("GET", "/api/activity"), (reply) => {
    assert.strictEqual(reply.status, 200)
    return reply.body.activity as Array<Activity>
  })

/** A signed-up account's client on `user_agent`, and the credentials to sign in elsewhere. */
const sign_up = (base: string, username: string, user_agent: string) =>
  Effect.gen(function* () {
    const credentials = { username, password: PASSWORD }
    const client = make_client(base)
    const reply = yield* client.call("POST", "/api/signup", credentials, undefined, {
      "user-agent": user_agent,
    })
    assert.strictEqual(reply.status, 201)
    return { client, credentials }
  })

const sign_in = (base: string, credentials: object, user_agent: string) =>
  Effect.gen(function* () {
    const client = make_client(base)
    const reply = yield* client.call("POST", "/api/login", credentials, undefined, {
      "user-agent": user_agent,
    })
    assert.strictEqual(reply.status, 200)
    return client
  })

for (const backend of backends) {
  layer(example_app(backend.name), { excludeTestServices: true })(
    `the example app's activity and audit log on ${backend.name}`,
    (it) => {
      it.effect(
        "a user sees their own sign-ins and sign-outs in words, newest first, and no one else's",
        () =>
          Effect.gen(function* () {
            const base = yield* base_url
            const { client: laptop, credentials } = yield* sign_up(base, "ada", firefox.user_agent)
            yield* sign_in(base, credentials, safari.user_agent)
            yield* sign_in(base, credentials, safari.user_agent)
            // another account, whose device sent markup for a User-Agent
            const { client: bob } = yield* sign_up(base, "bob", "<img src=x onerror=alert(1)>")
            // signed up a moment ago, so the password is fresh: no confirmation asked
            assert.deepStrictEqual((yield* laptop.call("POST", "/api/sessions/revoke-others")).body, {
              revoked: 2,
            })

            const activity = yield* activity_of(laptop)
            assert.deepStrictEqual(
              activity.map((entry) => entry.text),
              [
                "Signed out elsewhere (2 sessions)",
                `New sign-in from ${on_safari}`,
                `New sign-in from ${on_safari}`,
                `New sign-in from ${on_firefox}`,
              ],
            )
            const times = activity.map((entry) => Date.parse(entry.at))
            for (const time of times) assert.isAbove(time, Date.now() - 60_000)
            assert.deepStrictEqual(times, [...times].sort().reverse())

            // bob's own list has his sign-up alone; the markup is only an unknown device
            const his = yield* activity_of(bob)
            assert.deepStrictEqual(
              his.map((entry) => entry.text),
              ["New sign-in from an unknown device (127.0.0.1)"],
            )
            assert.notInclude(JSON.stringify(his), "onerror")
            assert.notInclude(JSON.stringify(his), "Firefox")
            // and nothing of his reached ada's
            assert.notInclude(JSON.stringify(activity), "unknown device")

            const anonymous = yield* make_client(base).call("GET", "/api/activity")
            assert.strictEqual(anonymous.status, 401)
          }),
      )

      it.effect("each way of signing out says who did it: logout, the owner, a password change", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const { client: laptop, credentials } = yield* sign_up(base, "cleo", firefox.user_agent)
          const phone = yield* sign_in(base, credentials, safari.user_agent)
          const tablet = yield* sign_in(base, credentials, safari.user_agent)
          yield* tablet.call("POST", "/api/logout")
          const sessions = (yield* laptop.call("GET", "/api/sessions")).body.sessions as Array<{
            id: string
            current: boolean
          }>
          const other = sessions.find((session) => !session.current)
          assert.strictEqual((yield* laptop.call("DELETE", `/api/sessions/${other?.id}`)).status, 200)
          assert.strictEqual((yield* phone.call("GET", "/api/me")).status, 401)
          yield* sign_in(base, credentials, safari.user_agent)
          const changed = yield* laptop.call("POST", "/api/password", {
            current_password: credentials.password,
            new_password: "a second passphrase, longer",
          })
          assert.deepStrictEqual(changed.body, { revoked: 1 })

          const texts = (yield* activity_of(laptop)).map((entry) => entry.text)
          // the change confirms the password and renews this session's token before signing out the rest
          assert.deepStrictEqual(texts.slice(0, 3), [
            "Password changed: 1 other session signed out",
            `Session given a new key: ${on_firefox}`,
            `Password confirmed: ${on_firefox}`,
          ])
          assert.includeMembers(texts, [
            `Signed out from the session list: ${on_safari}`,
            `Signed out: ${on_safari}`,
          ])
        }),
      )

      it.effect("the session's end is told too: an expiry, the session limit", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const { client: laptop, credentials } = yield* sign_up(base, "erik", firefox.user_agent)
          const phone = yield* sign_in(base, credentials, safari.user_agent)
          const phone_session = ((yield* phone.call("GET", "/api/me")).body.session as { id: string }).id
          yield* on_db((db) =>
            db
              .update(auth_session)
              .set({ expires_at: new Date(Date.now() - 60_000) })
              .where(eq(auth_session.id, phone_session)),
          )
          // the validation that finds it ended deletes it, and tells so once
          assert.strictEqual((yield* phone.call("GET", "/api/me")).status, 401)
          assert.strictEqual((yield* activity_of(laptop))[0]?.text, `Session expired: ${on_safari}`)
          // five more sign-ins: the default limit of 5 ends the laptop's, the oldest
          let newest = laptop
          for (let i = 0; i < 5; i++) newest = yield* sign_in(base, credentials, safari.user_agent)
          assert.strictEqual((yield* laptop.call("GET", "/api/me")).status, 401)
          const texts = (yield* activity_of(newest)).map((entry) => entry.text)
          // the limit is enforced right after the new session is made, in its transaction
          assert.deepStrictEqual(texts.slice(0, 2), [
            `Session ended by the session limit: ${on_firefox}`,
            `New sign-in from ${on_safari}`,
          ])
        }),
      )

      it.effect(
        "the audit log is an admin's alone: every account's entries, with usernames and devices",
        () =>
          Effect.gen(function* () {
            const base = yield* base_url
            const { client: dora } = yield* sign_up(base, "dora", firefox.user_agent)
            const dora_id = ((yield* dora.call("GET", "/api/me")).body.account as { id: string }).id
            const { client: admin } = yield* sign_up(base, "admin", safari.user_agent)

            assert.strictEqual((yield* make_client(base).call("GET", "/api/admin/audit")).status, 401)
            const refused = yield* dora.call("GET", "/api/admin/audit")
            assert.strictEqual(refused.status, 403)
            assert.deepStrictEqual(refused.body, { error: "admins only" })
            // nor may she sign anyone out
            const admin_id = ((yield* admin.call("GET", "/api/me")).body.account as { id: string }).id
            const forbidden = yield* dora.call("POST", `/api/admin/accounts/${admin_id}/revoke`)
            assert.strictEqual(forbidden.status, 403)
            assert.strictEqual((yield* admin.call("GET", "/api/me")).status, 200)

            // the admin signs dora out everywhere
            const revoked = yield* admin.call("POST", `/api/admin/accounts/${dora_id}/revoke`)
            assert.deepStrictEqual(revoked.body, { revoked: 1 })
            assert.strictEqual((yield* dora.call("GET", "/api/me")).status, 401)

            const listed = yield* admin.call("GET", "/api/admin/audit")
            assert.strictEqual(listed.status, 200)
            const entries = listed.body.entries as Array<AuditRow>
            const [newest] = entries
            assert.deepInclude(newest, {
              account: "dora",
              kind: "revoked_all",
              reason: "admin",
              count: 1,
              session: null,
              text: "Signed out everywhere by an administrator (1 session)",
            })
            const dora_sign_up = entries.find((entry) => entry.account === "dora" && entry.kind === "created")
            assert.deepInclude(dora_sign_up, {
              reason: null,
              browser: firefox.browser,
              os: firefox.os,
              ip: "127.0.0.1",
            })
            assert.match(dora_sign_up?.session ?? "", /^[0-9a-f]{8}$/)
            assert.isDefined(entries.find((entry) => entry.account === "admin" && entry.kind === "created"))
            for (const entry of entries) assert.isFalse(Number.isNaN(Date.parse(entry.at)))
            // no token and no whole hash in it
            assert.notMatch(JSON.stringify(entries), /[0-9a-f]{64}|[A-Za-z0-9_-]{43}/)

            // dora, signed in again, reads who ended her session
            const back = yield* sign_in(base, { username: "dora", password: PASSWORD }, "curl/8")
            const texts = (yield* activity_of(back)).map((entry) => entry.text)
            assert.include(texts, "Signed out everywhere by an administrator (1 session)")
          }),
      )
    },
  )
}

report_skipped_postgres("the example app's activity and audit log")
