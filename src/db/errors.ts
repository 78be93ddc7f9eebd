import { DrizzleQueryError } from "drizzle-orm/errors"
import { Schema } from "effect"

export const DbErrorReason = Schema.Literals([
  "connection",
  "unique_violation",
  "foreign_key_violation",
  "serialization",
  "deadlock",
  "timeout",
  "other",
])
export type DbErrorReason = typeof DbErrorReason.Type

const RETRYABLE: ReadonlySet<DbErrorReason> = new Set(["connection", "serialization", "deadlock", "timeout"])

// Driver-level codes (postgres.js and Node sockets) that mean the connection is gone.
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
])

/** The one place where a SQLSTATE (or driver code) becomes a reason. */
export const classify_sqlstate = (code: string | undefined): DbErrorReason => {
  if (code === undefined) return "other"
  if (CONNECTION_CODES.has(code)) return "connection"
  // 08: connection exception; 57P01-03: server shutting down or starting; 53300: too many connections
  if (code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03" || code === "53300") {
    return "connection"
  }
  if (code === "23505") return "unique_violation"
  if (code === "23503") return "foreign_key_violation"
  if (code === "40001") return "serialization"
  if (code === "40P01") return "deadlock"
  // statement_timeout / cancel, lock_timeout, idle-in-transaction timeout
  if (code === "57014" || code === "55P03" || code === "25P03") return "timeout"
  return "other"
}

interface DriverErrorFields {
  readonly code?: unknown
  readonly constraint?: unknown
  readonly constraint_name?: unknown
}

const string_field = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

/**
 * A database failure. The message names the operation, the reason, the SQLSTATE
 * and the constraint — never query parameters or server detail lines, which can
 * carry token hashes or other user input.
 */
export class DbError extends Schema.TaggedError<DbError>()("DbError", {
  operation: Schema.String,
  reason: DbErrorReason,
  sqlstate: Schema.optional(Schema.String),
  constraint: Schema.optional(Schema.String),
  message: Schema.String,
}) {
  get is_retryable(): boolean {
    return RETRYABLE.has(this.reason)
  }

  static from(operation: string, error: unknown): DbError {
    // Drizzle wraps the driver error, and its own message lists the parameters.
    const driver = (error instanceof DrizzleQueryError ? error.cause : error) as DriverErrorFields | undefined
    const sqlstate = string_field(driver?.code)
    const constraint = string_field(driver?.constraint_name) ?? string_field(driver?.constraint)
    const reason = classify_sqlstate(sqlstate)
    const details = [sqlstate && `SQLSTATE ${sqlstate}`, constraint && `constraint ${constraint}`].filter(
      Boolean,
    )
    return new DbError({
      operation,
      reason,
      ...(sqlstate === undefined ? {} : { sqlstate }),
      ...(constraint === undefined ? {} : { constraint }),
      message: `${operation} failed: ${reason}${details.length > 0 ? ` (${details.join(", ")})` : ""}`,
    })
  }
}
