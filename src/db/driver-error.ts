// A driver's error as it may be kept: for the cause of a DbError, which apps
// log. Server messages can quote values ("invalid input syntax for type uuid:
// "…""), and detail lines name keys (a token hash); neither is kept.

/** A name PostgreSQL quotes in messages: a table, a constraint, a role, a database. */
const IDENTIFIER = /^[A-Za-z_][\w$.-]{0,62}$/
/**
 * Runs long enough, and mixed enough, to be a token, a hash or a key: 20 or
 * more base64url characters with a digit or a capital. (A long name with
 * digits goes too: secrets before names.)
 */
const TOKEN_LIKE = /[A-Za-z0-9_-]{20,}/g
const MIXED = /[0-9A-Z]/

/** `message` with quoted values and token-like runs replaced by "…"; quoted names stay. */
export const redacted_message = (message: string): string =>
  message
    .split('"')
    .map((part, i) => (i % 2 === 1 && !IDENTIFIER.test(part) ? "…" : part))
    .join('"')
    .replace(TOKEN_LIKE, (run) => (MIXED.test(run) ? "…" : run))

/** A copy of a driver's error with its name, its code and its message redacted; nothing else. */
export const redacted_driver_error = (driver: {
  readonly message?: unknown
  readonly code?: unknown
  readonly name?: unknown
}): Error => {
  const error = new Error(redacted_message(typeof driver.message === "string" ? driver.message : ""))
  if (typeof driver.name === "string") error.name = driver.name
  if (typeof driver.code === "string") Object.assign(error, { code: driver.code })
  return error
}
