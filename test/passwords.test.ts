import { randomBytes, scryptSync } from "node:crypto"
import { assert, layer } from "@effect/vitest"
import * as argon2 from "@node-rs/argon2"
import { eq } from "drizzle-orm"
import { Effect } from "effect"
import { credential } from "../examples/app/credentials.ts"
import { account } from "../src/index.ts"
import { base_url, example_app, make_client, password_set_before_the_rules } from "./support/app.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { on_db } from "./support/fixtures.ts"

// OWASP's Argon2id minimum: 19 MiB, 2 passes, 1 lane
const CURRENT_HASH = /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/

const stored_hash = (username: string) =>
  on_db((db) =>
    db
      .select({ password_hash: credential.password_hash })
      .from(credential)
      .innerJoin(account, eq(account.id, credential.account_id))
      .where(eq(account.username, username)),
  ).pipe(Effect.map((rows) => rows[0]?.password_hash))

const store_hash = (username: string, password_hash: string) =>
  Effect.gen(function* () {
    const [owner] = yield* on_db((db) => db.select().from(account).where(eq(account.username, username)))
    if (owner === undefined) return assert.fail(`no account ${username}`)
    yield* on_db((db) =>
      db.update(credential).set({ password_hash }).where(eq(credential.account_id, owner.id)),
    )
  })

/** A hash as earlier versions of the example made it: scrypt, N = 2^14, r = 8, p = 1. */
const old_scrypt_hash = (password: string) => {
  const salt = randomBytes(16)
  const key = scryptSync(password, salt, 64, { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 })
  return `scrypt$${salt.toString("base64url")}$${key.toString("base64url")}`
}

/** A JSON POST whose body is `parts` as they are: text as UTF-8, bytes as bytes. */
const post_raw = (path: string, parts: ReadonlyArray<string | Uint8Array>, cookie?: string) =>
  Effect.gen(function* () {
    const base = yield* base_url
    const body = Buffer.concat(parts.map((part) => (typeof part === "string" ? Buffer.from(part) : part)))
    return yield* Effect.promise(async () => {
      const response = await fetch(base + path, {
        method: "POST",
        headers: { "content-type": "application/json", ...(cookie === undefined ? {} : { cookie }) },
        body,
      })
      return { status: response.status, body: (await response.json()) as { error?: string } }
    })
  })

const signup = (username: string, password: string) =>
  Effect.gen(function* () {
    const reply = yield* make_client(yield* base_url).call("POST", "/api/signup", { username, password })
    assert.strictEqual(reply.status, 201)
  })

const login = (username: string, password: string) =>
  Effect.gen(function* () {
    const reply = yield* make_client(yield* base_url).call("POST", "/api/login", { username, password })
    return reply.status
  })

for (const backend of backends) {
  layer(example_app(backend.name), { excludeTestServices: true })(
    `the example app's password hashes on ${backend.name}`,
    (it) => {
      it.effect("a password is stored as argon2id with OWASP's parameters (m = 19 MiB, t = 2, p = 1)", () =>
        Effect.gen(function* () {
          yield* signup("anna", "a new kind of hash")
          assert.match((yield* stored_hash("anna")) ?? "", CURRENT_HASH)
          assert.strictEqual(yield* login("anna", "a new kind of hash"), 200)
          assert.strictEqual(yield* login("anna", "not a new kind of hash"), 401)
        }),
      )

      it.effect("an old scrypt hash still logs in, and the login replaces it with argon2id", () =>
        Effect.gen(function* () {
          yield* signup("boris", "placeholder password")
          const old = old_scrypt_hash("boris's old password")
          yield* store_hash("boris", old)
          // a wrong password leaves it as it is
          assert.strictEqual(yield* login("boris", "not boris's password"), 401)
          assert.strictEqual(yield* stored_hash("boris"), old)
          assert.strictEqual(yield* login("boris", "boris's old password"), 200)
          assert.match((yield* stored_hash("boris")) ?? "", CURRENT_HASH)
          assert.strictEqual(yield* login("boris", "boris's old password"), 200)
        }),
      )

      it.effect("an argon2 hash with weaker parameters is replaced at login", () =>
        Effect.gen(function* () {
          yield* signup("clara", "placeholder password")
          const weak = yield* Effect.promise(() =>
            argon2.hash("clara's password", { memoryCost: 4096, timeCost: 1, parallelism: 1 }),
          )
          yield* store_hash("clara", weak)
          assert.strictEqual(yield* login("clara", "clara's password"), 200)
          const upgraded = (yield* stored_hash("clara")) ?? ""
          assert.match(upgraded, CURRENT_HASH)
          // already current: the next login leaves it alone
          assert.strictEqual(yield* login("clara", "clara's password"), 200)
          assert.strictEqual(yield* stored_hash("clara"), upgraded)
        }),
      )

      it.effect("a password signed up in NFC logs in sent in NFD, and the other way round", () =>
        Effect.gen(function* () {
          const password = "Crème brûlée à l'été"
          const composed = password.normalize("NFC")
          const decomposed = password.normalize("NFD")
          assert.notStrictEqual(composed, decomposed)
          yield* signup("denis", composed)
          assert.strictEqual(yield* login("denis", decomposed), 200)
          yield* signup("elise", decomposed)
          assert.strictEqual(yield* login("elise", composed), 200)
          assert.strictEqual(yield* login("elise", decomposed), 200)
        }),
      )

      it.effect("sign-up refuses what NIST SP 800-63B-4 refuses, saying why in words", () =>
        Effect.gen(function* () {
          const client = make_client(yield* base_url)
          const refused: Array<[string, RegExp]> = [
            // the review's four, all accepted before
            ["password", /too short: use at least 15 characters \(it has 8\)/],
            ["12345678", /too short/],
            [" ".repeat(8), /too short/],
            ["hugo", /too short/],
            ["fourteen chars", /too short/],
            // characters are code points of the NFC form: 14 emoji are 28 UTF-16 units, "é" as e + accent is one
            ["🐢🦊🐙🦉🐝🌵🍄🌊🔥🌙🍀🎈🎲🎯", /too short: .*\(it has 14\)/],
            ["cafe\u0301 au lait !", /too short: .*\(it has 14\)/],
            // on the list of common passwords, in any case
            ["passwordpassword", /commonly used and leaked/],
            ["Qwertyuiop12345", /commonly used and leaked/],
            ["1qaz2wsx3edc4rfv", /commonly used and leaked/],
            [" ".repeat(15), /one character repeated/],
            ["hugo's own password", /must not contain your username/],
            ["my name is HUGO, hello", /must not contain your username/],
            ["🔑".repeat(201), /too long: use at most 200/],
          ]
          for (const [password, why] of refused) {
            const reply = yield* client.call("POST", "/api/signup", { username: "hugo", password })
            assert.strictEqual(reply.status, 400, password)
            assert.match(String(reply.body.error), why, password)
          }
          assert.isUndefined(client.cookie)
          // every character allowed, spaces and emoji included, up to 200
          const accepted = [
            "fifteen chars!!",
            "🐢🦊🐙🦉🐝🌵🍄🌊🔥🌙🍀🎈🎲🎯🪁",
            "  spaced   out  words ",
            "🔑🗝".repeat(100),
          ]
          for (const [i, password] of accepted.entries()) {
            const reply = yield* client.call("POST", "/api/signup", { username: `hugo${i}`, password })
            assert.strictEqual(reply.status, 201, password)
            assert.strictEqual(yield* login(`hugo${i}`, password), 200)
          }
        }),
      )

      it.effect(
        "a new password is held to the same rules; the refusal costs no guess and changes nothing",
        () =>
          Effect.gen(function* () {
            const client = make_client(yield* base_url)
            yield* client.call("POST", "/api/signup", {
              username: "ines",
              password: "the first long password",
            })
            for (const new_password of ["short one", "passwordpassword", "still ines inside"]) {
              const reply = yield* client.call("POST", "/api/password", {
                current_password: "the first long password",
                new_password,
              })
              assert.strictEqual(reply.status, 400, new_password)
              assert.isString(reply.body.error)
            }
            assert.strictEqual(yield* login("ines", "the first long password"), 200)
          }),
      )

      it.effect("an account whose password the rules now refuse logs in, and is asked to change it", () =>
        Effect.gen(function* () {
          const base = yield* base_url
          const jonas = yield* make_client(base).call("POST", "/api/signup", {
            username: "jonas",
            password: "placeholder password",
          })
          // 8 characters, on the common list
          yield* password_set_before_the_rules((jonas.body.account as { id: string }).id, "baseball")
          const client = make_client(base)
          const weak = yield* client.call("POST", "/api/login", { username: "jonas", password: "baseball" })
          assert.strictEqual(weak.status, 200)
          assert.isTrue(weak.body.password_change_required)
          assert.match(String(weak.body.password_problem), /too short/)
          // signed in all the same, and the change takes a password the rules accept
          assert.strictEqual((yield* client.call("GET", "/api/me")).status, 200)
          const changed = yield* client.call("POST", "/api/password", {
            current_password: "baseball",
            new_password: "a better one at last",
          })
          assert.strictEqual(changed.status, 200)
          const strong = yield* make_client(base).call("POST", "/api/login", {
            username: "jonas",
            password: "a better one at last",
          })
          assert.strictEqual(strong.status, 200)
          assert.isUndefined(strong.body.password_change_required)
        }),
      )

      it.effect(
        "a password that is not well-formed UTF-8 is refused with 400, never turned into U+FFFD",
        () =>
          Effect.gen(function* () {
            const invalid_bytes = Uint8Array.of(0xff, 0xc3)
            // a JSON escape for half a surrogate pair, and the replacement character it used to become
            const lone = String.raw`ab\ud800cdefghijklmnop`
            const replaced = "ab\ufffdcdefghijklmnop"
            const refused = (path: string, parts: ReadonlyArray<string | Uint8Array>, cookie?: string) =>
              Effect.gen(function* () {
                const reply = yield* post_raw(path, parts, cookie)
                assert.strictEqual(reply.status, 400, `${path} ${parts.join("")}`)
                assert.match(reply.body.error ?? "", /UTF-8|Unicode/)
              })
            yield* refused("/api/signup", [`{"username":"fanny","password":"${lone}"}`])
            yield* refused("/api/signup", [
              '{"username":"fanny","password":"ab',
              invalid_bytes,
              'cdefghijklmnop"}',
            ])
            // nothing was created under either form
            assert.strictEqual(yield* login("fanny", replaced), 401)

            yield* signup("gabriel", "a sound passphrase indeed")
            const client = make_client(yield* base_url)
            const signed_in = yield* client.call("POST", "/api/login", {
              username: "gabriel",
              password: "a sound passphrase indeed",
            })
            assert.strictEqual(signed_in.status, 200)
            const cookie = client.cookie
            yield* refused("/api/login", [`{"username":"gabriel","password":"${lone}"}`])
            yield* refused("/api/login", ['{"username":"gabriel","password":"ab', invalid_bytes, 'c"}'])
            yield* refused(
              "/api/password",
              [`{"current_password":"a sound passphrase indeed","new_password":"${lone}"}`],
              cookie,
            )
            yield* refused(
              "/api/password",
              [
                '{"current_password":"a sound passphrase indeed","new_password":"ab',
                invalid_bytes,
                'cdefghijklmnop"}',
              ],
              cookie,
            )
            yield* refused("/api/reauthenticate", [`{"password":"${lone}"}`], cookie)
            // the password is the one it was
            assert.strictEqual(yield* login("gabriel", "a sound passphrase indeed"), 200)
            assert.strictEqual(yield* login("gabriel", replaced), 401)
          }),
      )
    },
  )
}

report_skipped_postgres("the example app's password hashes")
