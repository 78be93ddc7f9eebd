import { randomBytes } from "node:crypto"
import { blake3 } from "@noble/hashes/blake3.js"
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js"
import { Effect } from "effect"
import { blake3_short_ascii_hex } from "./blake3-short.js"

/** How long a new session lives, and how far a sliding extension reaches. */
export const AUTH_SESSION_LIFETIME_MS = 30 * 24 * 60 * 60 * 1000
/** A touch extends the session when less than this remains before it expires. */
export const AUTH_SESSION_EXTEND_THRESHOLD_MS = 24 * 60 * 60 * 1000
/** `last_seen_at` is written at most once per this interval per session. */
export const AUTH_SESSION_TOUCH_INTERVAL_MS = 60 * 1000
/** Sessions an account keeps by default; the oldest are evicted past it. */
export const AUTH_SESSION_MAX_PER_ACCOUNT = 5

const TOKEN_BYTES = 32
/** 32 bytes in base64url without padding are exactly 43 characters. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/
const TOKEN_HASH_PATTERN = /^[0-9a-f]{64}$/

/** A new session token: 32 bytes from the CSPRNG, base64url without padding. */
export const generate_session_token: Effect.Effect<string> = Effect.sync(() =>
  randomBytes(TOKEN_BYTES).toString("base64url"),
)

/**
 * The storage key of a token: 64 lowercase hex chars of its blake3 hash.
 * A fast hash is enough here (no salt, no slow KDF): the token carries 256 bits
 * of entropy, so the hash cannot be reversed by guessing, and a database leak
 * yields nothing that can be sent back as a cookie.
 */
export const hash_session_token = (token: string): string =>
  blake3_short_ascii_hex(token) ?? bytesToHex(blake3(utf8ToBytes(token)))

/** Whether a value has the shape of a token this module generates. */
export const is_session_token = (value: unknown): value is string =>
  typeof value === "string" && TOKEN_PATTERN.test(value)

/** Whether a value has the shape of a token hash (an `auth_session.id`). */
export const is_session_token_hash = (value: unknown): value is string =>
  typeof value === "string" && TOKEN_HASH_PATTERN.test(value)

/** How many characters of a hash name a session in events and audit rows: too few to look it up by. */
export const HASH_PREFIX_LENGTH = 8

/** The part of a hash that names a session in events and audit rows. */
export const session_prefix = (token_hash: string): string => token_hash.slice(0, HASH_PREFIX_LENGTH)

/** The part of a hash that may appear in logs and messages. */
export const hash_prefix = (token_hash: string): string => `${session_prefix(token_hash)}…`
