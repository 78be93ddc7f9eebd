import { getTableName, sql } from "drizzle-orm"
import { bigint, customType, index, integer, pgTable, text } from "drizzle-orm/pg-core"
import {
  account_id_builder,
  type SessionTable,
  type SessionTableDefinition,
  session_table_definition,
  timestamptz,
} from "./session-table.js"

// The audit log of a session table: one row per lifecycle event, written by
// the same statement as the change it records (so it commits or rolls back
// with it). Drizzle only, like the session table: export it from the schema
// drizzle-kit reads.

/** PostgreSQL's 64-bit transaction id: the audit cursor orders by it (see docs/design.md, Audit log). */
const xid8 = customType<{ data: bigint; driverData: string }>({
  dataType: () => "xid8",
  fromDriver: (value) => BigInt(value),
  toDriver: (value) => value.toString(),
})

const build_audit_table = (name: string, definition: SessionTableDefinition) =>
  pgTable(
    name,
    {
      id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
      /** The writing transaction: readers only take rows of transactions that have ended. */
      tx: xid8("tx").notNull().default(sql`pg_current_xact_id()`),
      /** When it happened, by the application's Clock. */
      at: timestamptz("at").notNull(),
      /** created, extended, rotated, reauthenticated, revoked, revoked_all, revoked_others, evicted, ended, swept. */
      kind: text("kind").notNull(),
      /** Why: who revoked (logout, owner, admin, password_change), or how a session ended (expired, idle, absolute). */
      reason: text("reason"),
      /** No foreign key: the record outlives the account (retention removes it). */
      account_id: account_id_builder(definition.account_key, definition.account_id_kind),
      /** The first characters of the session's hash: enough to tell sessions apart, useless as a key. */
      session: text("session"),
      /** Sessions the event covers (a revoke of all, a cleanup batch). */
      count: integer("count").notNull().default(1),
      client_ip: text("client_ip"),
      user_agent: text("user_agent"),
    },
    (t) => [
      // the cursor's order
      index(`${name}_tx_id_idx`).on(t.tx, t.id),
      // an account's recent activity
      index(`${name}_account_id_idx`).on(t.account_id, t.id),
      // retention
      index(`${name}_at_idx`).on(t.at),
    ],
  )

/** An audit table (its `account_id` of the session table's key type). */
export type SessionAuditTable = ReturnType<typeof build_audit_table>

// Kept on the definition object, like the definition on the table.
const AUDIT = Symbol.for("effect-session-repo/SessionAuditTable")
// definitions whose statements were built: an audit table added later would be ignored
const IN_USE = Symbol.for("effect-session-repo/SessionTableInUse")

/**
 * Records every session lifecycle event of `sessions` in an audit table,
 * named `<sessions>_audit` unless `name` is given. Call it in your Drizzle
 * schema, next to `session_table`, and export the result so drizzle-kit
 * migrates it; from then on every write to the session table also writes its
 * events there, in the same statement.
 */
export const session_audit_table = (sessions: SessionTable, options: { readonly name?: string } = {}) => {
  const definition = session_table_definition(sessions)
  if (definition === undefined)
    throw new Error("session_audit_table: the session table was not made by session_table")
  const holder = definition as unknown as Record<symbol, unknown>
  if (holder[AUDIT] !== undefined)
    throw new Error("session_audit_table: this session table has an audit table already")
  if (holder[IN_USE] === true)
    throw new Error("session_audit_table: call it in the schema, before the session table is used")
  const table = build_audit_table(options.name ?? `${getTableName(sessions)}_audit`, definition)
  Object.defineProperty(definition, AUDIT, { value: table, enumerable: false })
  return table
}

/** The audit table of a session table's definition, if it has one; marks the definition in use. */
export const audit_table_of = (definition: SessionTableDefinition): SessionAuditTable | undefined => {
  const holder = definition as unknown as Record<symbol, unknown>
  if (holder[IN_USE] !== true) Object.defineProperty(definition, IN_USE, { value: true, enumerable: false })
  return holder[AUDIT] as SessionAuditTable | undefined
}
