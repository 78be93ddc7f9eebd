import { Schema } from "effect"

/** An argument was rejected before reaching the database. The value itself is never echoed. */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  field: Schema.String,
  message: Schema.String,
}) {}

/** A session was requested for an account that does not exist. */
export class AccountNotFound extends Schema.TaggedError<AccountNotFound>()("AccountNotFound", {
  /** Of the account key column's type: string, number or bigint. */
  account_id: Schema.Union([Schema.String, Schema.Number, Schema.BigInt]),
  message: Schema.String,
}) {}
