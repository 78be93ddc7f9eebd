import { assert, layer } from "@effect/vitest"
import * as argon2 from "@node-rs/argon2"
import { eq } from "drizzle-orm"
import { Clock, Duration, Effect, Layer } from "effect"
import { vi } from "vitest"
import { app_secret, shared_secret } from "../examples/app/app-secret.ts"
import { password_throttle } from "../examples/app/throttle.ts"
import { another_instance, base_url, example_app, make_client } from "./support/app.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { on_db } from "./support/fixtures.ts"

// Every password verification goes through argon2's `verify`, every new
// password through its `hash`: counting their calls tells which attempts were
// refused before any hash.
vi.mock("@node-rs/argon2", async (original) => {
  const real = await original<typeof import("@node-rs/argon2")>()
  return { ...real, verify: vi.fn(real.verify), hash: vi.fn(real.hash) }
})
const hashes_so_far = () => vi.mocked(argon2.verify).mock.calls.length
const new_hashes_so_far = () => vi.mocked(argon2.hash).mock.calls.length

interface Answer {
  readonly status: number
  readonly retry_after: string | null
  readonly body: Record<string, unknown>
}

/**
 * A POST from a client at `ip`, as the trusted proxy in front of the app
 * reports it; `cookie` for the routes that need a session.
 */
const post = (ip: string, path: string, body: unknown, cookie?: string) =>
  Effect.gen(function* () {
    const base = yield* base_url
    return yield* Effect.promise(async (): Promise<Answer> => {
      const response = await fetch(base + path, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-forwarded-for": ip,
          ...(cookie === undefined ? {} : { cookie }),
        },
        body: JSON.stringify(body),
      })
      return {
        status: response.status,
        retry_after: response.headers.get("retry-after"),
        body: (await response.json()) as Record<string, unknown>,
      }
    })
  })

/** Signs `username` up from an address of its own; its account id and session cookie. */
const signup = (username: string, password: string) =>
  Effect.gen(function* () {
    const client = make_client(yield* base_url)
    const reply = yield* client.call("POST", "/api/signup", { username, password }, undefined, {
      "x-forwarded-for": "192.0.2.1",
    })
    assert.strictEqual(reply.status, 201)
    return { id: (reply.body.account as { id: string }).id, cookie: client.cookie ?? "", client }
  })

/** A 429 as the app must send it: a whole number of seconds to wait, and a JSON error. */
const assert_throttled = (answer: Answer) => {
  assert.strictEqual(answer.status, 429)
  assert.match(answer.retry_after ?? "", /^[1-9][0-9]*$/)
  assert.isString(answer.body.error)
}

const count = (answers: ReadonlyArray<Answer>, status: number) =>
  answers.filter((answer) => answer.status === status).length

/** `attempts` logins at names no account has from `address`, four at a time: a password spray. */
const spray = (address: string, attempts: number) =>
  Effect.all(
    Array.from({ length: attempts }, (_, i) =>
      post(address, "/api/login", { username: `nobody${i}`, password: "Password1!" }),
    ),
    { concurrency: 4 },
  )

/**
 * The app's clock, stopped when the app starts. A burst's requests all meet
 * the count at once, but a slow backend takes over a second to answer them
 * all; with the clock running, the wait after the free attempts would end
 * meanwhile and rightly let one more in. Sleeping is the real clock's.
 */
const stopped_clock = Layer.effect(
  Clock.Clock,
  Effect.map(Clock.Clock, (real): Clock.Clock => {
    const millis = real.currentTimeMillisUnsafe()
    const nanos = BigInt(millis) * 1_000_000n
    return {
      currentTimeMillisUnsafe: () => millis,
      currentTimeMillis: Effect.succeed(millis),
      currentTimeNanosUnsafe: () => nanos,
      currentTimeNanos: Effect.succeed(nanos),
      monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
      monotonicTimeNanos: real.monotonicTimeNanos,
      sleep: (duration) => real.sleep(duration),
    }
  }),
)

for (const backend of backends) {
  layer(example_app(backend.name), { excludeTestServices: true })(
    `password guessing is throttled on ${backend.name}`,
    (it) => {
      it.effect("the device cookies' key is made once, in the database, for every process", () =>
        Effect.gen(function* () {
          // as two processes starting at once
          const [first, second] = yield* Effect.all(
            [shared_secret("device_cookie"), shared_secret("device_cookie")],
            {
              concurrency: 2,
            },
          )
          assert.deepStrictEqual(first, second)
          assert.strictEqual(first.length, 32)
          const rows = yield* on_db((db) => db.select().from(app_secret))
          assert.deepStrictEqual(
            rows.map((row) => row.name),
            ["device_cookie"],
          )
          assert.notDeepEqual(yield* shared_secret("another key"), first)
        }),
      )

      it.layer(another_instance({ trusted_proxies: ["127.0.0.1"] }).pipe(Layer.provide(stopped_clock)))(
        "bursts all at once, the app's clock stopped",
        (it) => {
          it.effect(
            "100 wrong passwords for one account at once: exactly 5 are hashed, 95 get 429; the owner elsewhere gets in",
            () =>
              Effect.gen(function* () {
                const alice = yield* signup("alice", "apples and oranges")
                // an IPv6 client counts as its /64
                const attacker = "2001:db8:1:2::1"
                const before = hashes_so_far()
                // all in flight together: a check that only reads the counts lets every one through
                const answers = yield* Effect.all(
                  Array.from({ length: 100 }, (_, i) =>
                    post(attacker, "/api/login", { username: "alice", password: `guess ${i}` }),
                  ),
                  { concurrency: "unbounded" },
                )
                assert.strictEqual(hashes_so_far() - before, 5)
                assert.strictEqual(count(answers, 401), 5)
                assert.strictEqual(count(answers, 429), 95)
                for (const answer of answers.filter((answer) => answer.status === 429))
                  assert_throttled(answer)
                // the 5 are counted for the pair, and the address kept only them
                const rows = yield* on_db((db) =>
                  db
                    .select()
                    .from(password_throttle)
                    .where(eq(password_throttle.address, "2001:db8:1:2::/64")),
                )
                assert.sameDeepMembers(
                  rows.map((row) => [row.account, row.failures]),
                  [
                    [alice.id, 5],
                    ["*", 5],
                  ],
                )

                // the right password: refused at the attacker's /64, accepted elsewhere
                const right = { username: "alice", password: "apples and oranges" }
                assert_throttled(yield* post("2001:db8:1:2::99", "/api/login", right))
                assert.strictEqual((yield* post("198.51.100.7", "/api/login", right)).status, 200)
                assert.strictEqual((yield* post("2001:db8:1:3::1", "/api/login", right)).status, 200)
                // and the owner's success elsewhere clears nothing at the attacker's
                assert_throttled(yield* post(attacker, "/api/login", right))
              }),
          )

          it.effect("60 sign-ups at once from one address: 50 are hashed, then 429", () =>
            Effect.gen(function* () {
              const flooder = "203.0.113.8"
              const before = new_hashes_so_far()
              const answers = yield* Effect.all(
                Array.from({ length: 60 }, (_, i) =>
                  post(flooder, "/api/signup", { username: `flood${i}`, password: "flooding the sign-up" }),
                ),
                { concurrency: "unbounded" },
              )
              assert.strictEqual(count(answers, 201), 50)
              assert.strictEqual(count(answers, 429), 10)
              for (const answer of answers.filter((answer) => answer.status === 429)) assert_throttled(answer)
              assert.strictEqual(new_hashes_so_far() - before, 50)
            }),
          )
        },
      )

      it.layer(another_instance({ trusted_proxies: ["127.0.0.1"] }))(
        "clients told apart by the address the trusted proxy reports",
        (it) => {
          it.effect("the same client gets in once Retry-After has passed, and its count starts over", () =>
            Effect.gen(function* () {
              yield* signup("bruno", "bread and butter")
              const client = "203.0.113.2"
              const wrong = { username: "bruno", password: "not bread and butter" }
              const right = { username: "bruno", password: "bread and butter" }
              for (let i = 0; i < 5; i++) {
                assert.strictEqual((yield* post(client, "/api/login", wrong)).status, 401)
              }
              const refused = yield* post(client, "/api/login", right)
              assert_throttled(refused)
              yield* Effect.sleep(Duration.seconds(Number(refused.retry_after)))
              assert.strictEqual((yield* post(client, "/api/login", right)).status, 200)
              // the success cleared the count: the next mistake is an ordinary 401
              assert.strictEqual((yield* post(client, "/api/login", wrong)).status, 401)
            }),
          )

          it.effect("20 wrong current passwords at /api/password: 429, and the session is kept", () =>
            Effect.gen(function* () {
              const carla = yield* signup("carla", "cards on the table")
              const client = "203.0.113.3"
              const answers: Array<Answer> = []
              for (let i = 0; i < 20; i++) {
                answers.push(
                  yield* post(
                    client,
                    "/api/password",
                    { current_password: `guess ${i}`, new_password: "cards off the table" },
                    carla.cookie,
                  ),
                )
              }
              assert.strictEqual(count(answers, 403), 5)
              assert.strictEqual(count(answers, 429), 15)
              for (const answer of answers.slice(5)) assert_throttled(answer)
              // still signed in, and the password is unchanged
              assert.strictEqual((yield* carla.client.call("GET", "/api/me")).status, 200)
              const login = yield* post("198.51.100.3", "/api/login", {
                username: "carla",
                password: "cards on the table",
              })
              assert.strictEqual(login.status, 200)
            }),
          )

          it.effect("wrong passwords at /api/reauthenticate are throttled too", () =>
            Effect.gen(function* () {
              const dora = yield* signup("dora", "doors wide open")
              const client = "203.0.113.4"
              const answers: Array<Answer> = []
              for (let i = 0; i < 20; i++) {
                answers.push(
                  yield* post(client, "/api/reauthenticate", { password: `guess ${i}` }, dora.cookie),
                )
              }
              assert.strictEqual(count(answers, 403), 5)
              for (const answer of answers.slice(5)) assert_throttled(answer)
              assert_throttled(
                yield* post(client, "/api/reauthenticate", { password: "doors wide open" }, dora.cookie),
              )
              assert.strictEqual((yield* dora.client.call("GET", "/api/me")).status, 200)
            }),
          )

          it.effect(
            "one address trying many names is throttled after 50 failures, names that exist or not alike",
            () =>
              Effect.gen(function* () {
                yield* signup("emil", "eggs for breakfast")
                const sprayer = "203.0.113.5"
                const answers = yield* spray(sprayer, 50)
                assert.strictEqual(count(answers, 401), 50)
                const right = { username: "emil", password: "eggs for breakfast" }
                assert_throttled(yield* post(sprayer, "/api/login", right))
                assert_throttled(yield* post(sprayer, "/api/login", { username: "nobody", password: "x" }))
                assert.strictEqual((yield* post("203.0.113.6", "/api/login", right)).status, 200)
              }),
          )

          it.effect("60 successful logins from one address use up none of its budget", () =>
            Effect.gen(function* () {
              yield* signup("gina", "gifts for everyone")
              const office = "203.0.113.9"
              for (let i = 0; i < 60; i++) {
                const login = yield* post(office, "/api/login", {
                  username: "gina",
                  password: "gifts for everyone",
                })
                assert.strictEqual(login.status, 200)
              }
              const rows = yield* on_db((db) =>
                db.select().from(password_throttle).where(eq(password_throttle.address, office)),
              )
              assert.deepStrictEqual(
                rows.map((row) => [row.account, row.failures]),
                [["*", 0]],
              )
            }),
          )

          it.effect("counts an hour old are deleted when a new count starts", () =>
            Effect.gen(function* () {
              const two_hours_ago = new Date(Date.now() - 2 * 3_600_000)
              yield* on_db((db) =>
                db.insert(password_throttle).values({
                  account: "*",
                  address: "198.51.100.99",
                  failures: 1000,
                  last_failure_at: two_hours_ago,
                }),
              )
              assert.strictEqual(
                (yield* post("203.0.113.7", "/api/login", { username: "fred", password: "x" })).status,
                401,
              )
              const left = yield* on_db((db) =>
                db.select().from(password_throttle).where(eq(password_throttle.address, "198.51.100.99")),
              )
              assert.deepStrictEqual(left, [])
            }),
          )
        },
      )

      // OWASP's device cookies: a browser that signed in before counts on its own
      it.layer(another_instance({ trusted_proxies: ["127.0.0.1"] }))(
        "a device that signed in to the account before, by its device cookie",
        (it) => {
          it.effect(
            "60 failures at random names from one address: its user with a device cookie still gets in",
            () =>
              Effect.gen(function* () {
                const hana = yield* signup("hana", "hazelnuts in the hall")
                const office = "203.0.113.20"
                const answers = yield* spray(office, 60)
                assert.strictEqual(count(answers, 401), 50)
                assert.strictEqual(count(answers, 429), 10)
                const right = { username: "hana", password: "hazelnuts in the hall" }
                // without it, refused like every other client at that address
                assert_throttled(yield* post(office, "/api/login", right))
                const login = yield* post(office, "/api/login", right, hana.client.device_cookie)
                assert.strictEqual(login.status, 200)
              }),
          )

          it.effect("a device's failures count for it alone: not the address's, not another device's", () =>
            Effect.gen(function* () {
              const ivan = yield* signup("ivan", "ivy on the walls")
              const laptop = ivan.client.device_cookie
              const phone = make_client(yield* base_url)
              yield* phone.call("POST", "/api/login", { username: "ivan", password: "ivy on the walls" })
              assert.notStrictEqual(phone.device_cookie, laptop)
              const home = "203.0.113.21"
              const wrong = { username: "ivan", password: "not the right one" }
              const right = { username: "ivan", password: "ivy on the walls" }
              for (let i = 0; i < 5; i++)
                assert.strictEqual((yield* post(home, "/api/login", wrong, laptop)).status, 401)
              assert_throttled(yield* post(home, "/api/login", wrong, laptop))
              assert_throttled(yield* post(home, "/api/login", right, laptop))
              assert.strictEqual((yield* post(home, "/api/login", right, phone.device_cookie)).status, 200)
              assert.strictEqual((yield* post(home, "/api/login", right)).status, 200)
              const rows = yield* on_db((db) =>
                db.select().from(password_throttle).where(eq(password_throttle.account, ivan.id)),
              )
              // the laptop's 5, under its device id; nothing for the address
              assert.deepStrictEqual(
                rows.map((row) => [row.address.startsWith("device:"), row.failures]),
                [[true, 5]],
              )
            }),
          )

          it.effect("a device cookie of one account gives no extra attempts at another, forged or not", () =>
            Effect.gen(function* () {
              const judy = yield* signup("judy", "jasmine and juniper")
              const mallet = yield* signup("mallet", "my very own account")
              const own = mallet.client.device_cookie ?? ""
              // the account id swapped for the victim's: the signature no longer fits
              const [name, value = ""] = own.split("=")
              const forged = `${name}=${[judy.id, ...value.split(".").slice(1)].join(".")}`
              const wrong = { username: "judy", password: "a guess at judy's" }
              for (const [address, cookie] of [
                ["203.0.113.22", own],
                ["203.0.113.23", forged],
              ] as const) {
                const statuses: Array<number> = []
                for (let i = 0; i < 7; i++)
                  statuses.push((yield* post(address, "/api/login", wrong, cookie)).status)
                assert.deepStrictEqual(statuses, [401, 401, 401, 401, 401, 429, 429], address)
              }
              // an address whose budget a spray used up: the cookie opens its own account only
              const sprayed = "203.0.113.24"
              yield* spray(sprayed, 50)
              assert_throttled(yield* post(sprayed, "/api/login", wrong, own))
              const mine = { username: "mallet", password: "my very own account" }
              assert.strictEqual((yield* post(sprayed, "/api/login", mine, own)).status, 200)
            }),
          )
        },
      )
    },
  )
}

report_skipped_postgres("password guessing is throttled")
