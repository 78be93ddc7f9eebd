// effect-session-repo/schema: what an application's Drizzle schema imports.
// Drizzle only (drizzle-kit loads it); no Effect, no driver.

export { type SessionAuditTable, session_audit_table } from "./audit-table.js"
export type { AccountId, Register, RegisteredSessionTable } from "./register.js"
export {
  type AccountIdKind,
  type AccountIdOf,
  type AnyAccountId,
  type AuthSession,
  type AuthSessionWithUsername,
  type SessionTable,
  type SessionTableDefinition,
  type SessionTableOptions,
  session_table,
  session_table_definition,
} from "./session-table.js"
export { type Account, account, auth_session, auth_session_audit } from "./standalone.js"
