import { DrizzleQueryError } from "drizzle-orm/errors"
import { Schema } from "effect"
import { redacted_driver_error } from "./driver-error.js"
import { NOT_REPLICATED } from "./standby-confirm.js"

export const DbErrorReason = Schema.Literals([
  // the connection was lost, or could not be made for a reason that passes (retryable)
  "connection",
  // nothing accepted the connection at the host and port (a server down or restarting: retryable)
  "connection_refused",
  "host_not_found",
  "database_missing",
  "authentication_failed",
  // TLS required by the server, refused by it, or its certificate not trusted
  "tls",
  // a database URL that is not a PostgreSQL one
  "invalid_url",
  "unique_violation",
  "foreign_key_violation",
  "serialization",
  "deadlock",
  "timeout",
  "undefined_table",
  // writes_wait_for_standby: the write committed on the primary, but no standby confirmed it (retryable)
  "not_replicated",
  "other",
])
export type DbErrorReason = typeof DbErrorReason.Type

const RETRYABLE: ReadonlySet<DbErrorReason> = new Set([
  "connection",
  "connection_refused",
  "serialization",
  "deadlock",
  "timeout",
  "not_replicated",
])

/** A connection lost or refused: a read may be sent again on a new one. */
export const is_connection_failure = (reason: DbErrorReason): boolean =>
  reason === "connection" || reason === "connection_refused"

/**
 * The code of the error a connection fails with when no host of a multi-host
 * URL accepted it as its target_session_attrs asks (multi-host.ts): during a
 * failover, until a new primary is up. Its message names the hosts tried.
 */
export const NO_HOST_MATCHED = "NO_HOST_MATCHED"

// Driver-level codes (Node sockets, and CONNECTION_CLOSED below) that mean the connection is gone.
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  NO_HOST_MATCHED,
])

// Node's TLS codes for a certificate that was not trusted.
const CERTIFICATE_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
])

// node-postgres reports some failures as a plain Error with no code; these are
// its messages (pg 8, pg-pool 3) and the code each stands for here. A connect
// timeout is a timeout, not a lost connection: the caller already waited the
// whole connect timeout (for a pool that stayed full, or a server that never
// answered), so reads do not retry it.
const PG_MESSAGE_CODES: ReadonlyMap<string, string> = new Map([
  ["Connection terminated unexpectedly", "CONNECTION_CLOSED"],
  ["Connection terminated", "CONNECTION_CLOSED"],
  ["Client has encountered a connection error and is not queryable", "CONNECTION_CLOSED"],
  ["Client was closed and is not queryable", "CONNECTION_CLOSED"],
  ["timeout exceeded when trying to connect", "CONNECT_TIMEOUT"],
  ["Connection terminated due to connection timeout", "CONNECT_TIMEOUT"],
  ["The server does not support SSL connections", "TLS_REFUSED"],
])

/** The one place where a SQLSTATE (or driver code) becomes a reason. */
export const classify_sqlstate = (code: string | undefined): DbErrorReason => {
  if (code === undefined) return "other"
  if (code === "ECONNREFUSED") return "connection_refused"
  if (code === "ENOTFOUND") return "host_not_found"
  if (code === "TLS_REFUSED" || code === "TLS_REQUIRED" || CERTIFICATE_CODES.has(code)) return "tls"
  if (CONNECTION_CODES.has(code)) return "connection"
  // 08: connection exception; 57P01-03: server shutting down or starting; 53300: too many connections
  if (code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03" || code === "53300") {
    return "connection"
  }
  if (code === "3D000") return "database_missing"
  // 28P01: invalid password; 28000: no such role, or refused by pg_hba.conf
  if (code === "28P01" || code === "28000") return "authentication_failed"
  if (code === "23505") return "unique_violation"
  if (code === "23503") return "foreign_key_violation"
  if (code === "40001") return "serialization"
  if (code === "40P01") return "deadlock"
  // statement_timeout / cancel, lock_timeout, idle-in-transaction timeout
  if (code === "57014" || code === "55P03" || code === "25P03" || code === "CONNECT_TIMEOUT") return "timeout"
  if (code === "42P01") return "undefined_table"
  if (code === NOT_REPLICATED) return "not_replicated"
  return "other"
}

interface DriverErrorFields {
  readonly code?: unknown
  readonly constraint?: unknown
  readonly message?: unknown
  readonly address?: unknown
  readonly port?: unknown
  readonly hostname?: unknown
  /** Node's AggregateError, when every address of a host name refused. */
  readonly errors?: unknown
}

const string_field = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

/**
 * The SQLSTATE or driver code of an error, node-postgres's code-less errors
 * included; a pg_hba.conf refusal of an unencrypted connection is TLS_REQUIRED.
 */
const driver_code = (driver: DriverErrorFields | undefined): string | undefined => {
  const message = string_field(driver?.message) ?? ""
  const code = string_field(driver?.code) ?? PG_MESSAGE_CODES.get(message)
  return code === "28000" && /(no encryption|SSL off)$/.test(message) ? "TLS_REQUIRED" : code
}

/** SQLSTATEs are five digits and capitals; anything else is a driver's or Node's own code. */
const is_sqlstate = (code: string): boolean => /^[0-9A-Z]{5}$/.test(code)

/** A name PostgreSQL quoted in its message (`database "x" does not exist`), if it looks like one. */
const quoted_name = (message: unknown, pattern: RegExp): string | undefined => {
  const name = pattern.exec(string_field(message) ?? "")?.[1]
  return name !== undefined && /^[\w.$-]{1,127}$/.test(name) ? name : undefined
}

/** Where a refused connection was going: `host:port` from Node's error (or the first of several). */
const destination = (driver: DriverErrorFields | undefined): string => {
  const first = Array.isArray(driver?.errors) ? (driver.errors[0] as DriverErrorFields | undefined) : driver
  const address = string_field(first?.address)
  return address === undefined ? "the host and port" : `${address}:${String(first?.port)}`
}

/** Whose migrations create a missing table: the standalone schema's (this package's) or the app's own. */
export type MigrationsOwner = "standalone" | "app"

/** What to do about each reason that a user can fix, given what the driver said. */
const hint = (
  reason: DbErrorReason,
  code: string | undefined,
  driver: DriverErrorFields | undefined,
  migrations: MigrationsOwner | undefined,
): string | undefined => {
  switch (reason) {
    case "connection":
      // this package's own message: host:port pairs and the attributes asked, nothing else
      return code === NO_HOST_MATCHED ? string_field(driver?.message) : undefined
    case "not_replicated":
      // this package's own message: what the standbys said, nothing else
      return string_field(driver?.message)
    case "connection_refused":
      return `nothing accepts connections at ${destination(driver)}: start PostgreSQL there, or fix the host and port in the database URL`
    case "host_not_found":
      return `the host name ${string_field(driver?.hostname) ?? ""} does not resolve: fix the host in the database URL`
    case "database_missing": {
      const name = quoted_name(driver?.message, /^database "(.+)" does not exist$/)
      return name === undefined
        ? "the database does not exist: create it, or fix the database name in the URL"
        : `database ${name} does not exist: create it (createdb ${name}), or fix the database name in the URL`
    }
    case "authentication_failed":
      return "the server refused the user: check the user and password in the database URL, and pg_hba.conf on the server"
    case "tls":
      return code === "TLS_REFUSED"
        ? "the server does not accept TLS: drop sslmode from the database URL, or turn ssl on in the server"
        : code === "TLS_REQUIRED"
          ? "the server accepts this connection only over TLS: add sslmode=verify-full (or sslmode=require) to the database URL"
          : "the server's certificate is not trusted: add sslrootcert=<its CA file> to the database URL, or sslmode=require to encrypt without verifying"
    case "undefined_table": {
      const name = quoted_name(driver?.message, /^relation "(.+)" does not exist$/)
      const table = name === undefined ? "a table" : `table ${name}`
      switch (migrations) {
        case "app":
          return `${table} does not exist: the session table is yours, so apply your drizzle-kit migrations (drizzle-kit generate, then drizzle-kit migrate)`
        case "standalone":
          return `${table} does not exist: run the standalone migrations (migrate, or npx effect-session-repo migrate)`
        case undefined:
          return `${table} does not exist: run the migrations that create it`
      }
      break
    }
    default:
      return undefined
  }
}

/**
 * A database failure. The message names the operation, the reason, the
 * SQLSTATE, the constraint and what to do — never query parameters or server
 * detail lines, which can carry token hashes or other user input. `cause` is
 * the driver's error with the same care: its message without quoted values or
 * long tokens, its code, no detail.
 */
export class DbError extends Schema.TaggedError<DbError>()("DbError", {
  operation: Schema.String,
  reason: DbErrorReason,
  sqlstate: Schema.optional(Schema.String),
  constraint: Schema.optional(Schema.String),
  /**
   * The connection was lost while COMMIT was on its way: the transaction may
   * or may not have committed (or, `not_replicated`, it committed on the
   * primary and a failover may still undo it). Retrying a create then may leave one extra
   * session, whose token nobody holds; it counts against the limit until
   * evicted or expired.
   */
  commit_unknown: Schema.optional(Schema.Boolean),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect()),
}) {
  get is_retryable(): boolean {
    return RETRYABLE.has(this.reason)
  }

  static from(
    operation: string,
    error: unknown,
    options: { readonly at_commit?: boolean; readonly migrations?: MigrationsOwner } = {},
  ): DbError {
    // Drizzle wraps the driver error, and its own message lists the parameters.
    const driver = (error instanceof DrizzleQueryError ? error.cause : error) as DriverErrorFields | undefined
    const code = driver_code(driver)
    const constraint = string_field(driver?.constraint)
    const reason = classify_sqlstate(code)
    // a server error at COMMIT (say 40001) means rolled back; a lost connection means unknown,
    // and so does a write no standby confirmed (committed on the primary, which may be failed over)
    const commit_unknown =
      (options.at_commit === true && reason === "connection") || reason === "not_replicated"
    const details = [
      code !== undefined && is_sqlstate(code) && `SQLSTATE ${code}`,
      code !== undefined && !is_sqlstate(code) && `code ${code}`,
      constraint && `constraint ${constraint}`,
      commit_unknown && reason !== "not_replicated" && "the transaction may have committed",
    ].filter(Boolean)
    const what_to_do = hint(reason, code, driver, options.migrations)
    return new DbError({
      operation,
      reason,
      ...(code !== undefined && is_sqlstate(code) ? { sqlstate: code } : {}),
      ...(constraint === undefined ? {} : { constraint }),
      ...(commit_unknown ? { commit_unknown } : {}),
      message:
        `${operation} failed: ${reason}${details.length > 0 ? ` (${details.join(", ")})` : ""}` +
        (what_to_do === undefined ? "" : `: ${what_to_do}`),
      ...(driver === undefined ? {} : { cause: redacted_driver_error(driver) }),
    })
  }
}
