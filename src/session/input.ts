import { Effect } from "effect"
import { is_session_token_hash } from "../token.ts"
import { InvalidInput } from "./errors.ts"

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

export const require_account_id = (value: unknown): Effect.Effect<string, InvalidInput> =>
  typeof value === "string" && UUID_PATTERN.test(value)
    ? Effect.succeed(value.toLowerCase())
    : Effect.fail(new InvalidInput({ field: "account_id", message: "account_id must be a UUID" }))

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

export const require_date = (field: string, value: unknown): Effect.Effect<Date, InvalidInput> =>
  value instanceof Date && !Number.isNaN(value.getTime())
    ? Effect.succeed(value)
    : Effect.fail(new InvalidInput({ field, message: `${field} must be a valid Date` }))
