import { and, desc, eq, gt, gte, inArray, lt, lte, ne, not, or, type SQL, sql } from "drizzle-orm"
import { alias } from "drizzle-orm/pg-core"
import { needs_no_standby } from "../db/standby-confirm.js"
import { named, statement } from "../db/statement.js"
import { audit_table_of } from "../schema/audit-table.js"
import {
  type AnyAccountId,
  type AuthSession,
  type SessionTableDefinition,
  session_table_definition,
} from "../schema/session-table.js"
import { auth_session as standalone_sessions } from "../schema/standalone.js"
import { type Changed, prefix_of, with_audit } from "./audited.js"
import { at, interval, ph, text_param } from "./placeholders.js"

// Every session query as a named prepared statement, built from the session
// table's definition (the app's own account table, or the standalone one).
// Times are placeholders filled from Effect's Clock: the SQL never calls
// now(), so one clock rules. The bounds come from ./expiry.ts. Each
// statement's name is its operation's: the query function's without `query_`.

/** What a session's event needs of a row a statement changed. */
type ChangedSession = {
  id: string
  account_id: AnyAccountId
  client_ip: string | null
  user_agent: string | null
}

/** Parameters that tell live sessions from ended ones (see `live_bounds`). */
type LiveBounds = { now: Date; idle_before: Date | null; authenticated_after: Date }

/**
 * Rows as the application sees them: account ids of the registered table's
 * key type (the repo and the query functions run only on that table).
 */
type Session = AuthSession

const make_session_statements = (definition: SessionTableDefinition) => {
  const { sessions: auth_session, accounts, account_key, label } = definition
  const audit = audit_table_of(definition)
  const session_columns = {
    id: auth_session.id,
    account_id: auth_session.account_id,
    created_at: auth_session.created_at,
    expires_at: auth_session.expires_at,
    last_seen_at: auth_session.last_seen_at,
    authenticated_at: auth_session.authenticated_at,
    absolute_expires_at: auth_session.absolute_expires_at,
    client_ip: auth_session.client_ip,
    user_agent: auth_session.user_agent,
  }
  const id_column = { id: auth_session.id }
  /** What a session's event needs of a row the statement changed. */
  const changed_session = {
    id: auth_session.id,
    account_id: auth_session.account_id,
    client_ip: auth_session.client_ip,
    user_agent: auth_session.user_agent,
  }
  // the row as it was before a touch (an UPDATE's RETURNING sees only the new one)
  const previous = alias(auth_session, "previous")
  const touched = {
    ...changed_session,
    expires_at: auth_session.expires_at,
    moved: sql<boolean>`${auth_session.expires_at} <> ${previous.expires_at}`.as("moved"),
  }
  /** One audit row per changed session, of `kind`. */
  const per_session =
    (kind: string, more: { readonly reason?: SQL; readonly where?: (changed: Changed) => SQL } = {}) =>
    (changed: Changed) => ({
      kind,
      account_id: changed.account_id,
      session: prefix_of(changed.id as SQL),
      client_ip: changed.client_ip,
      user_agent: changed.user_agent,
      ...(more.reason === undefined ? {} : { reason: more.reason }),
      ...(more.where === undefined ? {} : { where: more.where(changed) }),
    })
  const reason = text_param("reason")
  const account_key_column = { id: account_key }
  const with_username = { ...session_columns, username: sql<string>`${label}::text` }
  /**
   * A session valid at `now`: before both expiries, authenticated within the
   * policy's absolute lifetime and, with an idle timeout, seen after
   * `idle_before`. The same rule as `session_rejection`.
   */
  /** When its lifetime counts from: no earlier than its creation (`authenticated_since` in ./expiry.ts). */
  const authenticated_since = sql`GREATEST(${auth_session.authenticated_at}, ${auth_session.created_at})`
  const live: SQL = and(
    gt(auth_session.expires_at, at("now")),
    gt(auth_session.absolute_expires_at, at("now")),
    sql`${authenticated_since} > ${at("authenticated_after")}`,
    gt(auth_session.last_seen_at, at("idle_before")),
  ) as SQL
  /** A row the limit deletes, and whether it was live (evicted) or had ended. */
  const evicted = { ...changed_session, live: sql<boolean>`${live}`.as("live") }
  /** The absolute end under the policy in force (`absolute_end` in ./expiry.ts). */
  const absolute_end = sql`LEAST(${auth_session.absolute_expires_at}, ${authenticated_since} + ${interval("absolute_lifetime_ms")})`
  /** A new `expires_at` is due: an extension with room for one, or a cut to the absolute end (`touch_due`). */
  const extension_due = or(
    and(lt(auth_session.expires_at, at("extend_before")), lt(auth_session.expires_at, absolute_end)),
    gt(auth_session.expires_at, absolute_end),
  ) as SQL

  const create_session = statement<
    {
      id: string
      account_id: AnyAccountId
      now: Date
      seen_hour: Date
      expires_at: Date
      absolute_expires_at: Date
      client_ip: string | null
      user_agent: string | null
    },
    Array<Session>
  >(session_columns, (db) =>
    with_audit(
      db,
      audit,
      db
        .insert(auth_session)
        .values({
          // insert values are encoded by their column, placeholders included
          id: ph("id"),
          account_id: ph("account_id"),
          created_at: ph("now"),
          expires_at: ph("expires_at"),
          last_seen_at: ph("now"),
          last_seen_hour: ph("seen_hour"),
          authenticated_at: ph("now"),
          absolute_expires_at: ph("absolute_expires_at"),
          client_ip: ph("client_ip"),
          user_agent: ph("user_agent"),
        })
        .returning(session_columns),
      session_columns,
      per_session("created"),
    ),
  )

  /**
   * The session row by key, live or not: `session_rejection` decides, so a
   * rejection has its reason without a second round trip.
   */
  const session_get = statement<{ id: string }, Array<Session>>(session_columns, (db) =>
    db
      .select(session_columns)
      .from(auth_session)
      .where(eq(auth_session.id, ph("id"))),
  )

  /**
   * `session_get` on a hot standby: the row only if the standby has replayed
   * the primary's WAL up to `fence` (a primary, which has no replay position,
   * is current), else nothing, and the primary is asked (standby-reads.ts).
   */
  const session_get_on_standby = statement<{ id: string; fence: string }, Array<Session>>(
    session_columns,
    (db) =>
      db
        .select(session_columns)
        .from(auth_session)
        .where(
          and(
            eq(auth_session.id, ph("id")),
            sql`coalesce(pg_last_wal_replay_lsn(), pg_current_wal_flush_lsn()) >= ${ph("fence")}::pg_lsn`,
          ),
        ),
  )

  /**
   * Writes `last_seen_at`, and moves `expires_at` (never past the absolute
   * end) when less than the threshold remains. The WHERE repeats the
   * due-check and the liveness rule, so a touch that another instance already
   * wrote writes nothing, and no touch brings an ended session back.
   */
  const session_touch = statement<
    LiveBounds & {
      id: string
      seen_hour: Date
      stale_before: Date
      extend_before: Date
      extended_expires_at: Date
      absolute_lifetime_ms: number
    },
    Array<{
      id: string
      account_id: AnyAccountId
      client_ip: string | null
      user_agent: string | null
      expires_at: Date
      moved: boolean
    }>
  >(touched, (db) =>
    with_audit(
      db,
      audit,
      db
        .update(auth_session)
        .set({
          last_seen_at: at("now"),
          // unchanged within the hour: then the touch is a HOT update
          last_seen_hour: at("seen_hour"),
          expires_at: sql`CASE WHEN ${extension_due} THEN LEAST(${at("extended_expires_at")}, ${absolute_end}) ELSE ${auth_session.expires_at} END`,
        })
        .from(previous)
        .where(
          and(
            eq(auth_session.id, ph("id")),
            eq(previous.id, auth_session.id),
            live,
            or(lte(auth_session.last_seen_at, at("stale_before")), extension_due),
          ),
        )
        .returning(touched),
      touched,
      per_session("extended", { where: (changed) => sql`${changed.moved}` }),
    ),
  )

  /**
   * The user proved a credential again: the session counts as authenticated
   * now, with new expiries. Only a live session is renewed.
   */
  const session_reauthenticate = statement<
    LiveBounds & { id: string; seen_hour: Date; expires_at: Date; absolute_expires_at: Date },
    Array<Session>
  >(session_columns, (db) =>
    with_audit(
      db,
      audit,
      db
        .update(auth_session)
        .set({
          authenticated_at: at("now"),
          last_seen_at: at("now"),
          last_seen_hour: at("seen_hour"),
          expires_at: at("expires_at"),
          absolute_expires_at: at("absolute_expires_at"),
        })
        .where(and(eq(auth_session.id, ph("id")), live))
        .returning(session_columns),
      session_columns,
      per_session("reauthenticated"),
    ),
  )

  /**
   * Gives a live session a new key (the hash of a new token), keeping
   * everything else: the old token stops working in the same statement.
   */
  const session_rotate = statement<LiveBounds & { id: string; new_id: string }, Array<Session>>(
    session_columns,
    (db) =>
      with_audit(
        db,
        audit,
        db
          .update(auth_session)
          .set({ id: sql`${ph("new_id")}` })
          .where(and(eq(auth_session.id, ph("id")), live))
          .returning(session_columns),
        session_columns,
        // named by the key it had: the one its earlier events carry
        (changed) => ({ ...per_session("rotated")(changed), session: prefix_of(text_param("id")) }),
      ),
  )

  /**
   * Deletes the account's ended sessions and every live one past the newest
   * `max_sessions` (created_at desc, id desc). `keep` ranks first, so a session
   * just created survives even when clocks tie or skew.
   */
  const session_enforce_limit = statement<
    LiveBounds & { account_id: AnyAccountId; max_sessions: number; keep: string },
    Array<ChangedSession & { live: boolean }>
  >(evicted, (db) =>
    with_audit(
      db,
      audit,
      db
        .delete(auth_session)
        .where(
          and(
            eq(auth_session.account_id, ph("account_id")),
            or(
              not(live),
              inArray(
                auth_session.id,
                db
                  .select({ id: auth_session.id })
                  .from(auth_session)
                  .where(and(eq(auth_session.account_id, ph("account_id")), live))
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
        .returning(evicted),
      evicted,
      // the ended sessions it deletes on the way were not evicted: they had ended
      per_session("evicted", { where: (changed) => sql`${(changed as unknown as typeof evicted).live}` }),
    ),
  )

  const session_list_for_account = statement<
    LiveBounds & { account_id: AnyAccountId; limit: number },
    Array<Session>
  >(session_columns, (db) =>
    db
      .select(session_columns)
      .from(auth_session)
      .where(and(eq(auth_session.account_id, ph("account_id")), live))
      .orderBy(desc(auth_session.created_at), desc(auth_session.id))
      .limit(ph("limit")),
  )

  const session_list_all_active = statement<
    LiveBounds & { limit: number; idle_hour: Date | null },
    Array<Session & { username: string }>
  >(with_username, (db) =>
    db
      .select(with_username)
      .from(auth_session)
      .innerJoin(accounts, eq(account_key, auth_session.account_id))
      // the idle bound as a bound on the index too (rows last seen after
      // idle_before have an hour no earlier than its)
      .where(and(live, gte(auth_session.last_seen_hour, at("idle_hour"))))
      // by hour first, so the index on last_seen_hour serves it (an incremental
      // sort within each hour); the same order as by last_seen_at alone
      .orderBy(desc(auth_session.last_seen_hour), desc(auth_session.last_seen_at), desc(auth_session.id))
      .limit(ph("limit")),
  )

  /** Deletes the sessions `where` matches, returning what their events need, with their audit rows (`rows`). */
  const delete_sessions = (
    db: Parameters<typeof with_audit>[0],
    where: SQL,
    rows: Parameters<typeof with_audit>[4],
  ) =>
    with_audit(
      db,
      audit,
      db.delete(auth_session).where(where).returning(changed_session),
      changed_session,
      rows,
    )

  /** A logout: deletes the session, whoever owns it. */
  const session_revoke_by_hash = statement<{ id: string; now: Date; reason: string }, Array<ChangedSession>>(
    changed_session,
    (db) => delete_sessions(db, eq(auth_session.id, ph("id")), per_session("revoked", { reason })),
  )

  const session_revoke_for_account = statement<
    { id: string; account_id: AnyAccountId; now: Date; reason: string },
    Array<ChangedSession>
  >(changed_session, (db) =>
    delete_sessions(
      db,
      and(eq(auth_session.id, ph("id")), eq(auth_session.account_id, ph("account_id"))) as SQL,
      per_session("revoked", { reason }),
    ),
  )

  /** The account's one audit row of a revoke of many sessions: its count. */
  const many_revoked = (kind: string, session?: SQL) => (changed: Changed) => ({
    kind,
    reason,
    account_id: sql`(array_agg(${changed.account_id}))[1]`,
    ...(session === undefined ? {} : { session }),
    aggregate: true,
  })

  const session_revoke_all_for_account = statement<
    { account_id: AnyAccountId; now: Date; reason: string },
    Array<ChangedSession>
  >(changed_session, (db) =>
    delete_sessions(db, eq(auth_session.account_id, ph("account_id")), many_revoked("revoked_all")),
  )

  const session_revoke_others_for_account = statement<
    { account_id: AnyAccountId; keep: string; now: Date; reason: string },
    Array<ChangedSession>
  >(changed_session, (db) =>
    delete_sessions(
      db,
      and(eq(auth_session.account_id, ph("account_id")), ne(auth_session.id, ph("keep"))) as SQL,
      // named by the session kept: the caller's own
      many_revoked("revoked_others", prefix_of(text_param("keep"))),
    ),
  )

  /**
   * Deletes a session found ended (`reason`: expired, idle or absolute), if
   * it still is: the one validation that deletes it records its end, once.
   */
  const session_end = statement<LiveBounds & { id: string; reason: string }, Array<ChangedSession>>(
    changed_session,
    (db) =>
      delete_sessions(
        db,
        and(eq(auth_session.id, ph("id")), not(live)) as SQL,
        per_session("ended", { reason }),
      ),
  )

  /**
   * One cleanup batch. SKIP LOCKED lets several instances clean at once, each
   * taking rows the others have not locked.
   */
  const session_cleanup_expired = statement<{ now: Date; batch_size: number }, Array<{ id: string }>>(
    id_column,
    (db) =>
      with_audit(
        db,
        audit,
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
          .returning(id_column),
        id_column,
        () => ({ kind: "swept", aggregate: true }),
      ),
  )

  /**
   * Locks the account row until the transaction ends, so sessions of one account
   * are evicted one transaction at a time.
   */
  const session_enforce_limit_lock = statement<{ account_id: AnyAccountId }, Array<{ id: unknown }>>(
    account_key_column,
    (db) =>
      db
        .select(account_key_column)
        .from(accounts)
        .where(eq(account_key, ph("account_id")))
        .for("no key update"),
  )

  // a missing table's error says whose migrations create it
  const migrations = definition === session_table_definition(standalone_sessions) ? "standalone" : "app"
  const statements = named(
    {
      create_session,
      session_get,
      session_get_on_standby,
      session_touch,
      session_reauthenticate,
      session_rotate,
      session_enforce_limit,
      session_list_for_account,
      session_list_all_active,
      session_revoke_by_hash,
      session_revoke_for_account,
      session_revoke_all_for_account,
      session_revoke_others_for_account,
      session_end,
      session_cleanup_expired,
      session_enforce_limit_lock,
    },
    { migrations },
  )
  // a touch lost in a failover only leaves a session's end where it was
  needs_no_standby(statements.session_touch.sql)
  return statements
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
