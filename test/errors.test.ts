import { assert, describe, it } from "@effect/vitest"
import { DrizzleQueryError } from "drizzle-orm/errors"
import { classify_sqlstate, DbError, hash_session_token } from "../src/index.ts"

describe("DbError", () => {
  const cases = [
    ["08006", "connection", true],
    ["08001", "connection", true],
    ["57P01", "connection", true],
    ["53300", "connection", true],
    ["CONNECTION_CLOSED", "connection", true],
    ["ECONNREFUSED", "connection_refused", true],
    ["ENOTFOUND", "host_not_found", false],
    ["3D000", "database_missing", false],
    ["28P01", "authentication_failed", false],
    ["28000", "authentication_failed", false],
    ["DEPTH_ZERO_SELF_SIGNED_CERT", "tls", false],
    ["23505", "unique_violation", false],
    ["23503", "foreign_key_violation", false],
    ["40001", "serialization", true],
    ["40P01", "deadlock", true],
    ["57014", "timeout", true],
    ["55P03", "timeout", true],
    ["22P02", "other", false],
    [undefined, "other", false],
  ] as const
  for (const [code, reason, retryable] of cases) {
    it(`SQLSTATE ${code} is ${reason}${retryable ? ", retryable" : ""}`, () => {
      assert.strictEqual(classify_sqlstate(code), reason)
      const error = DbError.from("op", Object.assign(new Error("driver"), { code }))
      assert.strictEqual(error.reason, reason)
      assert.strictEqual(error.is_retryable, retryable)
    })
  }

  // node-postgres gives a lost connection no code, only a message
  for (const [message, reason] of [
    ["Connection terminated unexpectedly", "connection"],
    ["Client has encountered a connection error and is not queryable", "connection"],
    // the caller waited the whole connect timeout already: not a lost connection, reads do not retry it
    ["timeout exceeded when trying to connect", "timeout"],
  ] as const) {
    it(`node-postgres's "${message}" is a retryable ${reason} error, named as a code, not a SQLSTATE`, () => {
      const error = DbError.from("op", new DrizzleQueryError("select 1", [], new Error(message)))
      assert.strictEqual(error.reason, reason)
      assert.isTrue(error.is_retryable)
      assert.notInclude(error.message, message)
      assert.notInclude(error.message, "SQLSTATE")
    })
  }

  it("a lost connection at COMMIT says the transaction may have committed; a server error there does not", () => {
    const lost = DbError.from("transaction.commit", new Error("Connection terminated unexpectedly"), {
      at_commit: true,
    })
    assert.isTrue(lost.commit_unknown)
    assert.isTrue(lost.is_retryable)
    assert.include(lost.message, "may have committed")
    const refused = DbError.from("transaction.commit", Object.assign(new Error("x"), { code: "40001" }), {
      at_commit: true,
    })
    assert.isUndefined(refused.commit_unknown)
    assert.strictEqual(refused.reason, "serialization")
  })

  it("the message names operation, reason, SQLSTATE and constraint, never parameters or detail", () => {
    const hash = hash_session_token("secret")
    const driver = Object.assign(
      new Error(`duplicate key value violates unique constraint "auth_session_pkey"`),
      {
        code: "23505",
        constraint: "auth_session_pkey",
        detail: `Key (id)=(${hash}) already exists.`,
      },
    )
    const error = DbError.from("session_insert", new DrizzleQueryError("insert into ...", [hash], driver))
    assert.strictEqual(
      error.message,
      "session_insert failed: unique_violation (SQLSTATE 23505, constraint auth_session_pkey)",
    )
    assert.notInclude(JSON.stringify(error), hash.slice(0, 16))
    assert.notInclude(String(error), hash.slice(0, 16))
  })

  it("the cause is the driver's error without quoted values or token-like runs; names and codes stay", () => {
    const token = `${"a".repeat(10) + "B9_-".repeat(8)}xy1`
    const hash = hash_session_token("secret")
    const driver = Object.assign(new Error(`invalid input syntax for type uuid: "${token}" near ${hash}`), {
      code: "22P02",
      detail: `Key (id)=(${hash})`,
    })
    const error = DbError.from("op", new DrizzleQueryError("select", [hash], driver))
    const cause = error.cause as Error & { code?: string }
    assert.strictEqual(cause.message, 'invalid input syntax for type uuid: "…" near …')
    assert.strictEqual(cause.code, "22P02")
    const kept = DbError.from(
      "op",
      Object.assign(new Error('duplicate key value violates unique constraint "auth_session_pkey"'), {
        code: "23505",
      }),
    )
    assert.strictEqual(
      (kept.cause as Error).message,
      'duplicate key value violates unique constraint "auth_session_pkey"',
    )
    assert.notInclude(JSON.stringify(error), hash.slice(0, 16))
    assert.notInclude(JSON.stringify(error), token.slice(0, 16))
  })
})
