import { assert, describe, it } from "@effect/vitest"
import { blake3 } from "@noble/hashes/blake3.js"
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js"
import { Effect } from "effect"
import fc from "fast-check"
import {
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_MAX_PER_ACCOUNT,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  DEFAULT_SESSION_POLICY,
  generate_session_token,
  hash_session_token,
  is_session_token,
  is_session_token_hash,
} from "../src/index.ts"

describe("session tokens", () => {
  it("the origin's defaults: 30-day lifetime, 1-day extend threshold, 60 s touch interval, 5 sessions", () => {
    assert.strictEqual(AUTH_SESSION_LIFETIME_MS, 30 * 86_400_000)
    assert.strictEqual(AUTH_SESSION_EXTEND_THRESHOLD_MS, 86_400_000)
    assert.strictEqual(AUTH_SESSION_TOUCH_INTERVAL_MS, 60_000)
    assert.strictEqual(AUTH_SESSION_MAX_PER_ACCOUNT, 5)
    assert.deepStrictEqual(DEFAULT_SESSION_POLICY, {
      lifetime_ms: AUTH_SESSION_LIFETIME_MS,
      extend_threshold_ms: AUTH_SESSION_EXTEND_THRESHOLD_MS,
      touch_interval_ms: AUTH_SESSION_TOUCH_INTERVAL_MS,
      max_sessions: AUTH_SESSION_MAX_PER_ACCOUNT,
      cleanup_batch_size: 1000,
      absolute_lifetime_ms: 90 * 86_400_000,
      idle_timeout_ms: null,
      ip_storage: "full",
    })
  })

  it.effect("generate_session_token: 43 base64url chars carrying 32 random bytes, never repeated", () =>
    Effect.gen(function* () {
      const tokens = new Set<string>()
      for (let i = 0; i < 10_000; i++) {
        const token = yield* generate_session_token
        assert.match(token, /^[A-Za-z0-9_-]{43}$/)
        tokens.add(token)
      }
      assert.strictEqual(tokens.size, 10_000)
      const sample = [...tokens][0] as string
      assert.strictEqual(Buffer.from(sample, "base64url").length, 32)
      assert.isTrue(is_session_token(sample))
    }),
  )

  it("hash_session_token is blake3 as 64 lowercase hex chars", () => {
    // BLAKE3 reference test vector for the input "abc"
    assert.strictEqual(
      hash_session_token("abc"),
      "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
    )
    const hash = hash_session_token("a".repeat(43))
    assert.isTrue(is_session_token_hash(hash))
    assert.notStrictEqual(hash_session_token("a".repeat(43)), hash_session_token("b".repeat(43)))
    // UTF-8 input
    assert.match(hash_session_token("ü🙂"), /^[0-9a-f]{64}$/)
  })

  it("hash_session_token's short-input path equals the general BLAKE3 on every length 0-64, and longer or non-ASCII input", () => {
    const general = (text: string) => bytesToHex(blake3(utf8ToBytes(text)))
    // BLAKE3's hash of the empty input, from its specification's test vectors
    assert.strictEqual(
      hash_session_token(""),
      "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    )
    fc.assert(
      fc.property(fc.string({ unit: "binary-ascii", maxLength: 64 }), (text) => {
        assert.strictEqual(hash_session_token(text), general(text))
      }),
      { numRuns: 2000 },
    )
    for (let length = 0; length <= 64; length++) {
      const text = "~".repeat(length)
      assert.strictEqual(hash_session_token(text), general(text), `length ${length}`)
    }
    for (const text of ["a".repeat(65), "a".repeat(1000), `${"a".repeat(42)}é`, "ü🙂"])
      assert.strictEqual(hash_session_token(text), general(text))
  })

  it("shape checks reject near misses", () => {
    for (const bad of [
      "",
      "a".repeat(42),
      "a".repeat(44),
      `${"a".repeat(42)}+`,
      `${"a".repeat(42)}=`,
      42,
      null,
    ]) {
      assert.isFalse(is_session_token(bad))
    }
    for (const bad of ["", "A".repeat(64), "g".repeat(64), "a".repeat(63), "a".repeat(65)]) {
      assert.isFalse(is_session_token_hash(bad))
    }
  })
})
