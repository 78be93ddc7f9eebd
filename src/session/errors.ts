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

/**
 * Why a token names no valid session: not a token at all; no such session
 * (never issued, revoked, or deleted by cleanup); past `expires_at`; unused
 * for longer than the idle timeout; past its absolute lifetime.
 */
export const SessionRejectionReason = Schema.Literals(["malformed", "unknown", "expired", "idle", "absolute"])
export type SessionRejectionReason = typeof SessionRejectionReason.Type

/**
 * The request's session is not valid, and why: for the application's logs and
 * counters. A client should only ever see a plain 401.
 */
export class SessionRejected extends Schema.TaggedError<SessionRejected>()("SessionRejected", {
  reason: SessionRejectionReason,
  message: Schema.String,
}) {}

/** A sensitive operation needs a credential proven more recently than this session's. */
export class SessionNotFresh extends Schema.TaggedError<SessionNotFresh>()("SessionNotFresh", {
  authenticated_at: Schema.Date,
  max_age_ms: Schema.Number,
  message: Schema.String,
}) {}
