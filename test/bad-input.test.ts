import { assert, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import fc from "fast-check"
import { InvalidInput, SessionRepo } from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { statements_of } from "./support/fixtures.ts"

// 1,700 strings × 6 functions + 500 limits × 2 calls: more than 10,000 inputs per backend
const STRING_RUNS = 1700
const LIMIT_RUNS = 500

// Hostile strings: unicode, NUL bytes, SQL fragments, near-miss lengths, a large value.
const hostile_string = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: "grapheme", maxLength: 80 }),
  fc.constantFrom(
    "",
    "\u0000",
    "' OR 1=1 --",
    "'; DROP TABLE auth_session; --",
    "a".repeat(42),
    "a".repeat(44),
    `${"a".repeat(42)}\u0000`,
    "0".repeat(64),
    "G".repeat(64),
    "00000000-0000-0000-0000-00000000000g",
    "x".repeat(1_000_000),
  ),
)
const hostile_number = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1, 0, 1001, 2 ** 53, 1.5),
)

for (const backend of backends) {
  layer(backend.layer)(`bad input on ${backend.name}`, (it) => {
    it.effect(
      `${STRING_RUNS} hostile strings × 6 functions: none or InvalidInput, and not one statement sent`,
      () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          for (const input of fc.sample(hostile_string, { numRuns: STRING_RUNS, seed: 7 })) {
            const { statements, result } = yield* statements_of(
              Effect.all([
                repo.validate(input),
                Effect.flip(repo.create_session(input)),
                Effect.flip(repo.revoke_for_account(input, input)),
                Effect.flip(repo.revoke_all_for_account(input)),
                Effect.flip(repo.list_for_account(input)),
                repo.revoke(input),
              ]),
            )
            const [validated, ...errors] = result
            assert.isTrue(Option.isNone(validated))
            for (const error of errors.slice(0, 4)) assert.instanceOf(error, InvalidInput)
            assert.strictEqual(statements.length, 0, "a malformed input reached the database")
          }
        }),
    )

    it.effect(`${LIMIT_RUNS} hostile limits: a list for 1..1000, InvalidInput otherwise`, () =>
      Effect.gen(function* () {
        const repo = yield* SessionRepo
        for (const limit of fc.sample(hostile_number, { numRuns: LIMIT_RUNS, seed: 11 })) {
          const valid = Number.isInteger(limit) && limit >= 1 && limit <= 1000
          const outcome = yield* Effect.result(repo.list_all_active({ limit }))
          assert.strictEqual(outcome._tag === "Success", valid, `limit ${limit}`)
          const sessions = yield* Effect.result(
            repo.create_session(crypto.randomUUID(), { max_sessions: limit }),
          )
          if (sessions._tag === "Failure")
            assert.include(["InvalidInput", "AccountNotFound"], sessions.failure._tag)
        }
      }),
    )
  })
}

report_skipped_postgres("bad input")
