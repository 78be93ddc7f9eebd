import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { MAX_USER_AGENT_LENGTH, make_session_policy, SessionRepo } from "../src/index.ts"
import { stored_client_ip, stored_user_agent } from "../src/session/device.ts"
import { backends, report_skipped_postgres, under_policy } from "./support/backends.ts"
import { create_account, session_row } from "./support/fixtures.ts"

const CHROME_ON_LINUX =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"

describe("client address as the policy stores it", () => {
  const cases = [
    ["203.0.113.77", "203.0.113.77", "203.0.113.0"],
    // a dual-stack socket reports IPv4 clients this way
    ["::ffff:203.0.113.77", "203.0.113.77", "203.0.113.0"],
    ["2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::"],
    ["fe80::1%eth0", "fe80::1", "fe80::"],
    ["::1", "::1", "::"],
  ] as const
  for (const [given, full, truncated] of cases) {
    it.effect(`${given}: full ${full}, truncated ${truncated}, none null`, () =>
      Effect.gen(function* () {
        assert.strictEqual(yield* stored_client_ip(given, "full"), full)
        assert.strictEqual(yield* stored_client_ip(given, "truncated"), truncated)
        assert.isNull(yield* stored_client_ip(given, "none"))
      }),
    )
  }

  for (const bad of ["", " 1.2.3.4", "1.2.3", "0x7f.1", "256.1.1.1", "1.2.3.4:80", "example.com", "::g"]) {
    it.effect(`${JSON.stringify(bad)} is InvalidInput naming the field, not the value`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(stored_client_ip(bad, "full"))
        assert.strictEqual(error.field, "ip")
        if (bad !== "") assert.notInclude(error.message, bad)
      }),
    )
  }

  it.effect("no address, or storage none, is null without a check", () =>
    Effect.gen(function* () {
      assert.isNull(yield* stored_client_ip(undefined, "full"))
      assert.isNull(yield* stored_client_ip("not an address", "none"))
    }),
  )
})

describe("user agent as stored", () => {
  it("kept as given when printable and short", () => {
    assert.strictEqual(stored_user_agent(CHROME_ON_LINUX), CHROME_ON_LINUX)
  })
  it("control characters (NUL included) dropped, lone surrogates replaced, blank is none", () => {
    assert.strictEqual(stored_user_agent("Agent\u0000/1\r\n\u0085x"), "Agent/1x")
    assert.strictEqual(stored_user_agent("bad \ud800 half"), "bad \ufffd half")
    assert.isNull(stored_user_agent(" \t "))
    assert.isNull(stored_user_agent(undefined))
  })
  it(`cut to ${MAX_USER_AGENT_LENGTH} code points, never inside a surrogate pair`, () => {
    const stored = stored_user_agent("🦊".repeat(600)) ?? ""
    assert.strictEqual(Array.from(stored).length, MAX_USER_AGENT_LENGTH)
    assert.isTrue(stored.isWellFormed())
  })
})

for (const backend of backends) {
  layer(backend.layer)(`session devices on ${backend.name}`, (it) => {
    it.effect("create_session stores the device; list_for_account returns it", () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        const owner = yield* create_account()
        const { session } = yield* repo.create_session(owner.id, {
          device: { ip: "::ffff:198.51.100.7", user_agent: CHROME_ON_LINUX },
        })
        assert.deepInclude(session, { client_ip: "198.51.100.7", user_agent: CHROME_ON_LINUX })
        yield* TestClock.adjust(1000)
        const bare = yield* repo.create_session(owner.id)
        const listed = yield* repo.list_for_account(owner.id)
        assert.deepStrictEqual(
          listed.map((s) => [s.id, s.client_ip, s.user_agent]),
          [
            [bare.session.id, null, null],
            [session.id, "198.51.100.7", CHROME_ON_LINUX],
          ],
        )
        const all = yield* repo.list_all_active({ limit: 1000 })
        assert.deepInclude(all.find((s) => s.id === session.id) ?? {}, { client_ip: "198.51.100.7" })
      }),
    )

    it.effect(
      "a 600-emoji user agent is stored cut to the column's bound; a bad address creates nothing",
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const owner = yield* create_account()
          const { session } = yield* repo.create_session(owner.id, {
            device: { user_agent: "🦊".repeat(600) },
          })
          assert.strictEqual(Array.from((yield* session_row(session.id))?.user_agent ?? "").length, 512)
          const error = yield* Effect.flip(repo.create_session(owner.id, { device: { ip: "10.0.0.256" } }))
          assert.strictEqual(error._tag, "InvalidInput")
          assert.lengthOf(yield* repo.list_for_account(owner.id), 1)
        }),
    )

    it.effect("ip_storage truncated keeps the /24 or /48; none keeps nothing", () =>
      Effect.gen(function* () {
        const owner = yield* create_account()
        const create = (ip: string, ip_storage: "truncated" | "none") =>
          Effect.gen(function* () {
            const policy = yield* make_session_policy({ ip_storage })
            return yield* SessionRepo.use((repo) =>
              repo.create_session(owner.id, { device: { ip, user_agent: "kept" } }),
            ).pipe(under_policy(policy))
          })
        const v4 = yield* create("203.0.113.77", "truncated")
        const v6 = yield* create("2001:db8:85a3:1:2:3:4:5", "truncated")
        const none = yield* create("203.0.113.77", "none")
        assert.strictEqual((yield* session_row(v4.session.id))?.client_ip, "203.0.113.0")
        assert.strictEqual((yield* session_row(v6.session.id))?.client_ip, "2001:db8:85a3::")
        assert.deepInclude(yield* session_row(none.session.id), { client_ip: null, user_agent: "kept" })
      }),
    )
  })
}

report_skipped_postgres("session devices")
