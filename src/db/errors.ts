import { DrizzleQueryError } from "drizzle-orm/errors"
import { Schema } from "effect"

export const DbErrorReason = Schema.Literals([
  "connection",
  "unique_violation",
  "foreign_key_violation",
  "serialization",
  "deadlock",
  "timeout",
  "undefined_table",
  "other",
])
export type DbErrorReason = typeof DbErrorReason.Type

const RETRYABLE: ReadonlySet<DbErrorReason> = new Set(["connection", "serialization", "deadlock", "timeout"])

// Driver-level codes (Node sockets, and CONNECTION_CLOSED below) that mean the connection is gone.
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
])

// node-postgres reports a lost or unobtainable connection as a plain Error
// with no code; these are its messages (pg 8, pg-pool 3) and the code each
// stands for here. A connect timeout is a timeout, not a lost connection: the
// caller already waited the whole connect timeout (for a pool that stayed
// full, or a server that never answered), so reads do not retry it.
const PG_MESSAGE_CODES: ReadonlyMap<string, string> = new Map([
  ["Connection terminated unexpectedly", "CONNECTION_CLOSED"],
  ["Connection terminated", "CONNECTION_CLOSED"],
  ["Client has encountered a connection error and is not queryable", "CONNECTION_CLOSED"],
  ["Client was closed and is not queryable", "CONNECTION_CLOSED"],
  ["timeout exceeded when trying to connect", "CONNECT_TIMEOUT"],
  ["Connection terminated due to connection timeout", "CONNECT_TIMEOUT"],
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
  if (code === "57014" || code === "55P03" || code === "25P03" || code === "CONNECT_TIMEOUT") return "timeout"
  if (code === "42P01") return "undefined_table"
  return "other"
}

// PostgreSQL's own wording for 42P01; only the name is taken from it (never other text).
const MISSING_RELATION = /^relation "([A-Za-z0-9_.]{1,127})" does not exist$/

/** Names the missing table (a schema object, not user data) and what to do. */
const missing_table_hint = (driver: DriverErrorFields | undefined): string => {
  const name = MISSING_RELATION.exec(string_field(driver?.message) ?? "")?.[1]
  return `${name === undefined ? "a table" : `table ${name}`} does not exist: run the migrations (your drizzle-kit migrate for your own session table; migrate or "effect-session-repo migrate" for the standalone one)`
}

interface DriverErrorFields {
  readonly code?: unknown
  readonly constraint?: unknown
  readonly message?: unknown
}

const string_field = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

/** The SQLSTATE or driver code of an error, node-postgres's code-less connection errors included. */
const driver_code = (driver: DriverErrorFields | undefined): string | undefined =>
  string_field(driver?.code) ?? PG_MESSAGE_CODES.get(string_field(driver?.message) ?? "")

/** SQLSTATEs are five digits and capitals; anything else is a driver's or Node's own code. */
const is_sqlstate = (code: string): boolean => /^[0-9A-Z]{5}$/.test(code)

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
  /**
   * The connection was lost while COMMIT was on its way: the transaction may
   * or may not have committed. Retrying a create then may leave one extra
   * session, whose token nobody holds; it counts against the limit until
   * evicted or expired.
   */
  commit_unknown: Schema.optional(Schema.Boolean),
  message: Schema.String,
}) {
  get is_retryable(): boolean {
    return RETRYABLE.has(this.reason)
  }

  static from(operation: string, error: unknown, options: { readonly at_commit?: boolean } = {}): DbError {
    // Drizzle wraps the driver error, and its own message lists the parameters.
    const driver = (error instanceof DrizzleQueryError ? error.cause : error) as DriverErrorFields | undefined
    const sqlstate = driver_code(driver)
    const constraint = string_field(driver?.constraint)
    const reason = classify_sqlstate(sqlstate)
    // a server error at COMMIT (say 40001) means rolled back; a lost connection means unknown
    const commit_unknown = options.at_commit === true && reason === "connection"
    const details = [
      sqlstate && (is_sqlstate(sqlstate) ? `SQLSTATE ${sqlstate}` : `code ${sqlstate}`),
      constraint && `constraint ${constraint}`,
      commit_unknown && "the transaction may have committed",
      reason === "undefined_table" && missing_table_hint(driver),
    ].filter(Boolean)
    return new DbError({
      operation,
      reason,
      ...(sqlstate === undefined ? {} : { sqlstate }),
      ...(constraint === undefined ? {} : { constraint }),
      ...(commit_unknown ? { commit_unknown } : {}),
      message: `${operation} failed: ${reason}${details.length > 0 ? ` (${details.join(", ")})` : ""}`,
    })
  }
}
