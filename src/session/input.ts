import { Effect } from "effect"
import type { AccountIdKind, AnyAccountId } from "../schema/session-table.js"
import { is_session_token_hash } from "../token.js"
import { InvalidInput } from "./errors.js"
import { REVOKE_REASONS, type RevokeReason } from "./events.js"

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The most rows one list call may ask for. */
export const MAX_LIST_LIMIT = 1000

// Checks run before any SQL: bad values never reach the database, and the
// error names the field, never the value (it may be a token).

export const require_token_hash = (value: unknown): Effect.Effect<string, InvalidInput> =>
  is_session_token_hash(value)
    ? Effect.succeed(value)
    : Effect.fail(
        new InvalidInput({ field: "token_hash", message: "token_hash must be 64 lowercase hex chars" }),
      )

/** The longest text account id accepted where the key sets no length (a key longer than this is not an id). */
const MAX_TEXT_ACCOUNT_ID = 1024
const INT4_MIN = -(2 ** 31)
const INT4_MAX = 2 ** 31 - 1
const INT8_MAX = 2n ** 63n - 1n

/**
 * Text the key can hold as it is: well-formed (a lone surrogate would be sent
 * as U+FFFD, so two ids would name one account), no NUL (PostgreSQL text
 * cannot hold it), at most `max_length` characters.
 */
const is_text_id = (value: unknown, max_length: number): value is string =>
  typeof value === "string" &&
  value.length > 0 &&
  value.isWellFormed() &&
  !value.includes("\0") &&
  [...value].length <= max_length

/** What the account key column holds, as `require_account_id` checks it. */
export interface AccountKey {
  readonly account_id_kind: AccountIdKind
  readonly account_id_max_length?: number
}

const id_check = (
  key: AccountKey,
): { readonly ok: (value: unknown) => boolean; readonly message: string } => {
  switch (key.account_id_kind) {
    case "uuid":
      return { ok: (value) => typeof value === "string" && UUID_PATTERN.test(value), message: "a UUID" }
    case "text": {
      const max_length = key.account_id_max_length ?? MAX_TEXT_ACCOUNT_ID
      return {
        ok: (value) => is_text_id(value, max_length),
        message: `a well-formed string of 1 to ${max_length} characters without NUL`,
      }
    }
    case "integer":
      return {
        ok: (value) =>
          Number.isSafeInteger(value) && (value as number) >= INT4_MIN && (value as number) <= INT4_MAX,
        message: "an integer (int4)",
      }
    case "bigint_number":
      return { ok: (value) => Number.isSafeInteger(value), message: "a safe integer" }
    case "bigint":
      return {
        ok: (value) => typeof value === "bigint" && value >= -INT8_MAX - 1n && value <= INT8_MAX,
        message: "a bigint (int8)",
      }
  }
}

/**
 * An account id of the type the account key column holds: a string for uuid
 * and text keys (uuids lowercased), a number for integer keys, a bigint for
 * bigint keys in bigint mode. Anything else, "42" for an integer key
 * included, is `InvalidInput`.
 */
export const require_account_id = (
  key: AccountKey,
  value: unknown,
): Effect.Effect<AnyAccountId, InvalidInput> => {
  const check = id_check(key)
  if (!check.ok(value))
    return Effect.fail(
      new InvalidInput({ field: "account_id", message: `account_id must be ${check.message}` }),
    )
  return Effect.succeed(
    key.account_id_kind === "uuid" ? (value as string).toLowerCase() : (value as AnyAccountId),
  )
}

/** An integer in `min..max`; anything else is an error, never a silent clamp. */
export const require_int_in_range = (
  field: string,
  value: unknown,
  min: number,
  max: number,
): Effect.Effect<number, InvalidInput> =>
  Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max
    ? Effect.succeed(value as number)
    : Effect.fail(new InvalidInput({ field, message: `${field} must be an integer from ${min} to ${max}` }))

export const require_list_limit = (value: unknown): Effect.Effect<number, InvalidInput> =>
  require_int_in_range("limit", value, 1, MAX_LIST_LIMIT)

export const require_max_sessions = (value: unknown): Effect.Effect<number, InvalidInput> =>
  require_int_in_range("max_sessions", value, 1, Number.MAX_SAFE_INTEGER)

/** A cleanup batch of no rows would never come back short: the cleanup would never end. */
export const require_cleanup_batch_size = (value: unknown): Effect.Effect<number, InvalidInput> =>
  require_int_in_range("cleanup_batch_size", value, 1, 100_000)

export const require_date = (field: string, value: unknown): Effect.Effect<Date, InvalidInput> =>
  value instanceof Date && !Number.isNaN(value.getTime())
    ? Effect.succeed(value)
    : Effect.fail(new InvalidInput({ field, message: `${field} must be a valid Date` }))

/** A revoke's reason as given, or `fallback` (the method's own) when none was. */
export const require_revoke_reason = (
  value: unknown,
  fallback: RevokeReason,
): Effect.Effect<RevokeReason, InvalidInput> =>
  value === undefined
    ? Effect.succeed(fallback)
    : (REVOKE_REASONS as ReadonlyArray<unknown>).includes(value)
      ? Effect.succeed(value as RevokeReason)
      : Effect.fail(
          new InvalidInput({
            field: "reason",
            message: `reason must be one of ${REVOKE_REASONS.join(", ")}`,
          }),
        )

const AUDIT_CURSOR = /^(\d{1,20}):(\d{1,19})$/

/** A cursor as `SessionAuditLog.read` returns them: a transaction id and a row id. */
export const require_audit_cursor = (
  value: unknown,
): Effect.Effect<{ tx: string; id: number }, InvalidInput> => {
  const parts = typeof value === "string" ? AUDIT_CURSOR.exec(value) : null
  const id = parts === null ? Number.NaN : Number(parts[2])
  return parts !== null && Number.isSafeInteger(id) && BigInt(parts[1] as string) < 2n ** 64n
    ? Effect.succeed({ tx: parts[1] as string, id })
    : Effect.fail(
        new InvalidInput({ field: "cursor", message: "cursor must be one SessionAuditLog.read returned" }),
      )
}
