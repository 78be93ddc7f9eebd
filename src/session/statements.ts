import { and, desc, eq, gt, inArray, lt, lte, ne, or, sql } from "drizzle-orm"
import { statement } from "../db/statement.js"
import type { AccountId, AuthSession, SessionTableDefinition } from "../schema/session-table.js"

// Every session query as a named prepared statement, built from the session
// table's definition (the app's own account table, or the standalone one).
// Times are placeholders filled from Effect's Clock: the SQL never calls
// now(), so one clock rules.

const ph = sql.placeholder

const make_session_statements = (definition: SessionTableDefinition) => {
  const { sessions: auth_session, accounts, account_key, label } = definition
  /** A timestamp placeholder encoded as the timestamptz columns are. */
  const at = (name: string) => sql`${sql.param(sql.placeholder(name), auth_session.expires_at)}`
  const live_columns = {
    id: auth_session.id,
    account_id: auth_session.account_id,
    created_at: auth_session.created_at,
    expires_at: auth_session.expires_at,
    last_seen_at: auth_session.last_seen_at,
  }

  const insert_session = statement<
    { id: string; account_id: AccountId; now: Date; expires_at: Date },
    Array<AuthSession>
  >("session_insert", (db) =>
    db
      .insert(auth_session)
      .values({
        // insert values are encoded by their column, placeholders included
        id: ph("id"),
        account_id: ph("account_id"),
        created_at: ph("now"),
        expires_at: ph("expires_at"),
        last_seen_at: ph("now"),
      })
      .returning(),
  )

  const select_valid_session = statement<{ id: string; now: Date }, Array<AuthSession>>(
    "session_get_valid",
    (db) =>
      db
        .select(live_columns)
        .from(auth_session)
        .where(and(eq(auth_session.id, ph("id")), gt(auth_session.expires_at, at("now")))),
  )

  /**
   * Writes `last_seen_at`, and moves `expires_at` when less than the threshold
   * remains. The WHERE repeats the due-check, so a touch that another instance
   * already wrote, or one on an expired row, writes nothing.
   */
  const touch_session = statement<
    { id: string; now: Date; stale_before: Date; extend_before: Date; extended_expires_at: Date },
    Array<{ expires_at: Date }>
  >("session_touch", (db) =>
    db
      .update(auth_session)
      .set({
        last_seen_at: at("now"),
        expires_at: sql`CASE WHEN ${auth_session.expires_at} < ${at("extend_before")} THEN ${at("extended_expires_at")} ELSE ${auth_session.expires_at} END`,
      })
      .where(
        and(
          eq(auth_session.id, ph("id")),
          gt(auth_session.expires_at, at("now")),
          or(
            lte(auth_session.last_seen_at, at("stale_before")),
            lt(auth_session.expires_at, at("extend_before")),
          ),
        ),
      )
      .returning({ expires_at: auth_session.expires_at }),
  )

  /**
   * Deletes the account's expired sessions and every live one past the newest
   * `max_sessions` (created_at desc, id desc). `keep` ranks first, so a session
   * just created survives even when clocks tie or skew.
   */
  const evict_sessions = statement<
    { account_id: AccountId; now: Date; max_sessions: number; keep: string },
    Array<{ id: string }>
  >("session_enforce_limit", (db) =>
    db
      .delete(auth_session)
      .where(
        and(
          eq(auth_session.account_id, ph("account_id")),
          or(
            lte(auth_session.expires_at, at("now")),
            inArray(
              auth_session.id,
              db
                .select({ id: auth_session.id })
                .from(auth_session)
                .where(
                  and(eq(auth_session.account_id, ph("account_id")), gt(auth_session.expires_at, at("now"))),
                )
                .orderBy(
                  sql`${auth_session.id} = ${ph("keep")} DESC`,
                  desc(auth_session.created_at),
                  desc(auth_session.id),
                )
                .offset(ph("max_sessions")),
            ),
          ),
        ),
      )
      .returning({ id: auth_session.id }),
  )

  const select_sessions_for_account = statement<
    { account_id: AccountId; now: Date; limit: number },
    Array<AuthSession>
  >("session_list_for_account", (db) =>
    db
      .select(live_columns)
      .from(auth_session)
      .where(and(eq(auth_session.account_id, ph("account_id")), gt(auth_session.expires_at, at("now"))))
      .orderBy(desc(auth_session.created_at), desc(auth_session.id))
      .limit(ph("limit")),
  )

  const select_all_active_sessions = statement<
    { now: Date; limit: number },
    Array<AuthSession & { username: string }>
  >("session_list_all_active", (db) =>
    db
      .select({ ...live_columns, username: sql<string>`${label}::text` })
      .from(auth_session)
      .innerJoin(accounts, eq(account_key, auth_session.account_id))
      .where(gt(auth_session.expires_at, at("now")))
      .orderBy(desc(auth_session.last_seen_at), desc(auth_session.id))
      .limit(ph("limit")),
  )

  const delete_session = statement<{ id: string }, Array<{ id: string }>>("session_revoke_by_hash", (db) =>
    db
      .delete(auth_session)
      .where(eq(auth_session.id, ph("id")))
      .returning({ id: auth_session.id }),
  )

  const delete_session_of_account = statement<{ id: string; account_id: AccountId }, Array<{ id: string }>>(
    "session_revoke_for_account",
    (db) =>
      db
        .delete(auth_session)
        .where(and(eq(auth_session.id, ph("id")), eq(auth_session.account_id, ph("account_id"))))
        .returning({ id: auth_session.id }),
  )

  const delete_sessions_of_account = statement<{ account_id: AccountId }, Array<{ id: string }>>(
    "session_revoke_all_for_account",
    (db) =>
      db
        .delete(auth_session)
        .where(eq(auth_session.account_id, ph("account_id")))
        .returning({ id: auth_session.id }),
  )

  const delete_other_sessions_of_account = statement<
    { account_id: AccountId; keep: string },
    Array<{ id: string }>
  >("session_revoke_others_for_account", (db) =>
    db
      .delete(auth_session)
      .where(and(eq(auth_session.account_id, ph("account_id")), ne(auth_session.id, ph("keep"))))
      .returning({ id: auth_session.id }),
  )

  /**
   * One cleanup batch. SKIP LOCKED lets several instances clean at once, each
   * taking rows the others have not locked.
   */
  const delete_expired_batch = statement<{ now: Date; batch_size: number }, Array<{ id: string }>>(
    "session_cleanup_expired",
    (db) =>
      db
        .delete(auth_session)
        // = ANY(ARRAY(...)), not IN (...): the planner turns IN into a hash join
        // over a sequential scan of the whole table (test/explain.test.ts)
        .where(
          sql`${auth_session.id} = ANY(ARRAY(${db
            .select({ id: auth_session.id })
            .from(auth_session)
            .where(lte(auth_session.expires_at, at("now")))
            // oldest first, and it keeps the generic plan (which prepared
            // statements get after five runs) on the expires_at index: without
            // an order that plan scanned the whole table for the few expired rows
            .orderBy(auth_session.expires_at)
            .limit(ph("batch_size"))
            .for("update", { skipLocked: true })}))`,
        )
        .returning({ id: auth_session.id }),
  )

  /**
   * Locks the account row until the transaction ends, so sessions of one account
   * are evicted one transaction at a time.
   */
  const lock_account = statement<{ account_id: AccountId }, Array<{ id: unknown }>>("account_lock", (db) =>
    db
      .select({ id: account_key })
      .from(accounts)
      .where(eq(account_key, ph("account_id")))
      .for("no key update"),
  )

  return {
    insert_session,
    select_valid_session,
    touch_session,
    evict_sessions,
    select_sessions_for_account,
    select_all_active_sessions,
    delete_session,
    delete_session_of_account,
    delete_sessions_of_account,
    delete_other_sessions_of_account,
    delete_expired_batch,
    lock_account,
  }
}

export type SessionStatements = ReturnType<typeof make_session_statements>

const made = new WeakMap<SessionTableDefinition, SessionStatements>()

/** The statements of a session table, built once per definition. */
export const session_statements = (definition: SessionTableDefinition): SessionStatements => {
  let statements = made.get(definition)
  if (statements === undefined) {
    statements = make_session_statements(definition)
    made.set(definition, statements)
  }
  return statements
}

/** The statements of a session table by label (tests EXPLAIN each; benchmarks time them). */
export const statement_catalog = (definition: SessionTableDefinition) =>
  new Map(Object.values(session_statements(definition)).map((statement) => [statement.label, statement]))
