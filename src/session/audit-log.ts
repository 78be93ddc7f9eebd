import { desc, eq, lt, sql } from "drizzle-orm"
import { Context, Effect, Layer } from "effect"
import type { DbError } from "../db/errors.js"
import { Db } from "../db/handle.js"
import { named, statement } from "../db/statement.js"
import { audit_table_of, type SessionAuditTable } from "../schema/audit-table.js"
import type { AccountId } from "../schema/register.js"
import type { AnyAccountId } from "../schema/session-table.js"
import { CurrentSessionTable } from "./current-session-table.js"
import type { InvalidInput } from "./errors.js"
import type { SessionEvent } from "./events.js"
import {
  require_account_id,
  require_audit_cursor,
  require_cleanup_batch_size,
  require_date,
  require_list_limit,
} from "./input.js"
import { at, ph } from "./placeholders.js"

// The audit table, read: by cursor (every event once, in a stable order, for
// processes that follow the log), by account (its recent activity) and newest
// first (an admin's view); and trimmed to a retention period.

/**
 * Where a reader of the audit log stands: opaque, store it as it is. Rows are
 * read in the order of their transaction id, then id; only rows of
 * transactions that have ended are read, so a row committed late is never
 * behind a cursor that moved past it.
 */
export type AuditCursor = string & { readonly AuditCursor: unique symbol }

/** The cursor before every row. */
export const AUDIT_START = "0:0" as AuditCursor

export interface AuditEntry<Id extends AnyAccountId = AccountId> {
  /** The row's id: the order rows were written in (newest-first lists use it). */
  readonly id: number
  /** The cursor just past this entry. */
  readonly cursor: AuditCursor
  readonly event: SessionEvent<Id>
}

interface AuditRow {
  readonly id: number
  readonly tx: string
  readonly at: Date
  readonly kind: string
  readonly reason: string | null
  readonly account_id: AnyAccountId | null
  readonly session: string | null
  readonly count: number
  readonly client_ip: string | null
  readonly user_agent: string | null
}

/** The event an audit row records (rows are only written from events, so the kinds match). */
const entry_of = (row: AuditRow): AuditEntry<AnyAccountId> => {
  const { kind, at: when, account_id, session, reason, count, client_ip, user_agent } = row
  const event = (
    kind === "swept"
      ? { kind, at: when, count }
      : kind === "revoked_all"
        ? { kind, at: when, account_id, reason, count }
        : kind === "revoked_others"
          ? { kind, at: when, account_id, reason, count, session }
          : {
              kind,
              at: when,
              account_id,
              session,
              client_ip,
              user_agent,
              ...(reason === null ? {} : { reason }),
            }
  ) as SessionEvent<AnyAccountId>
  return { id: row.id, cursor: `${row.tx}:${row.id}` as AuditCursor, event }
}

const make_audit_statements = (audit: SessionAuditTable) => {
  const columns = {
    id: audit.id,
    tx: sql<string>`${audit.tx}::text`.as("tx"),
    at: audit.at,
    kind: audit.kind,
    reason: audit.reason,
    account_id: audit.account_id,
    session: audit.session,
    count: audit.count,
    client_ip: audit.client_ip,
    user_agent: audit.user_agent,
  }
  const id_column = { id: audit.id }
  return named(
    {
      /**
       * Rows past the cursor, of transactions older than any still running
       * (a running one may yet commit rows with lower ids).
       */
      audit_read: statement<{ tx: string; id: number; limit: number }, Array<AuditRow>>(columns, (db) =>
        db
          .select(columns)
          .from(audit)
          .where(
            sql`(${audit.tx}, ${audit.id}) > (${ph("tx")}::xid8, ${ph("id")}::bigint) AND ${audit.tx} < pg_snapshot_xmin(pg_current_snapshot())`,
          )
          .orderBy(audit.tx, audit.id)
          .limit(ph("limit")),
      ),
      audit_for_account: statement<{ account_id: AnyAccountId; limit: number }, Array<AuditRow>>(
        columns,
        (db) =>
          db
            .select(columns)
            .from(audit)
            .where(eq(audit.account_id, ph("account_id")))
            .orderBy(desc(audit.id))
            .limit(ph("limit")),
      ),
      audit_recent: statement<{ limit: number }, Array<AuditRow>>(columns, (db) =>
        db.select(columns).from(audit).orderBy(desc(audit.id)).limit(ph("limit")),
      ),
      /** One retention batch, oldest first; SKIP LOCKED lets instances trim at once. */
      audit_cleanup: statement<{ before: Date; batch_size: number }, Array<{ id: number }>>(id_column, (db) =>
        db
          .delete(audit)
          .where(
            sql`${audit.id} = ANY(ARRAY(${db
              .select(id_column)
              .from(audit)
              .where(lt(audit.at, at("before")))
              .orderBy(audit.at)
              .limit(ph("batch_size"))
              .for("update", { skipLocked: true })}))`,
          )
          .returning(id_column),
      ),
    },
    { migrations: "app" },
  )
}

export interface SessionAuditLogShape<Id extends AnyAccountId = AccountId> {
  /**
   * Up to `limit` entries past `after` (`AUDIT_START` for all), oldest first,
   * and the cursor to read on from. Readers that each keep their own cursor
   * each see every event once. An entry appears once the transaction that
   * wrote it and every transaction older than it have ended.
   */
  readonly read: (
    after: AuditCursor,
    options?: { readonly limit?: number },
  ) => Effect.Effect<
    { readonly entries: Array<AuditEntry<Id>>; readonly cursor: AuditCursor },
    InvalidInput | DbError
  >
  /** The account's latest entries, newest first: its recent activity. */
  readonly for_account: (
    account_id: Id,
    options?: { readonly limit?: number },
  ) => Effect.Effect<Array<AuditEntry<Id>>, InvalidInput | DbError>
  /** The latest entries of every account, newest first. */
  readonly recent: (options?: {
    readonly limit?: number
  }) => Effect.Effect<Array<AuditEntry<Id>>, InvalidInput | DbError>
  /** Deletes entries older than `before` in batches of `batch_size` (1,000 by default); returns how many. */
  readonly cleanup: (
    before: Date,
    options?: { readonly batch_size?: number },
  ) => Effect.Effect<number, InvalidInput | DbError>
}

const make = Effect.gen(function* () {
  const definition = yield* CurrentSessionTable
  const audit = audit_table_of(definition)
  if (audit === undefined)
    return yield* Effect.die(
      new Error(
        "SessionAuditLog: the session table has no audit table (define one with session_audit_table)",
      ),
    )
  const statements = make_audit_statements(audit)
  const pool = yield* Db
  const on_pool = <A>(effect: Effect.Effect<A, DbError, Db>) => Effect.provideService(effect, Db, pool)
  const entries = (rows: Array<AuditRow>) => rows.map(entry_of) as Array<AuditEntry>

  const read = Effect.fn("SessionAuditLog.read")(function* (
    after: AuditCursor,
    options: { readonly limit?: number } = {},
  ) {
    const { tx, id } = yield* require_audit_cursor(after)
    const limit = yield* require_list_limit(options.limit ?? 100)
    const rows = entries(yield* on_pool(statements.audit_read({ tx, id, limit })))
    return { entries: rows, cursor: rows.at(-1)?.cursor ?? after }
  })

  const for_account = Effect.fn("SessionAuditLog.for_account")(function* (
    account_id: AccountId,
    options: { readonly limit?: number } = {},
  ) {
    const owner = yield* require_account_id(definition, account_id)
    const limit = yield* require_list_limit(options.limit ?? 50)
    return entries(yield* on_pool(statements.audit_for_account({ account_id: owner, limit })))
  })

  const recent = Effect.fn("SessionAuditLog.recent")(function* (options: { readonly limit?: number } = {}) {
    const limit = yield* require_list_limit(options.limit ?? 100)
    return entries(yield* on_pool(statements.audit_recent({ limit })))
  })

  const cleanup = Effect.fn("SessionAuditLog.cleanup")(function* (
    before: Date,
    options: { readonly batch_size?: number } = {},
  ) {
    const until = yield* require_date("before", before)
    const batch_size = yield* require_cleanup_batch_size(options.batch_size ?? 1000)
    let total = 0
    while (true) {
      const deleted = (yield* on_pool(statements.audit_cleanup({ before: until, batch_size }))).length
      total += deleted
      if (deleted < batch_size) return total
    }
  })

  return SessionAuditLog.of({ read, for_account, recent, cleanup })
})

const SessionAuditLogService: Context.ServiceClass<
  SessionAuditLog,
  "effect-session-repo/SessionAuditLog",
  SessionAuditLogShape
> = Context.Service<SessionAuditLog, SessionAuditLogShape>()("effect-session-repo/SessionAuditLog")

/** The audit table of the current session table, read and trimmed; on the pool. */
export class SessionAuditLog extends SessionAuditLogService {
  /** Dies when it is built if the session table has no audit table. */
  static readonly layer: Layer.Layer<SessionAuditLog, never, CurrentSessionTable | Db> = Layer.effect(
    SessionAuditLog,
    make,
  )
}
