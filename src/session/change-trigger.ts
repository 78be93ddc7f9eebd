import { getTableName, sql } from "drizzle-orm"
import { Effect } from "effect"
import { DbError } from "../db/errors.js"
import type { Db } from "../db/handle.js"
import { db_query } from "../db/query.js"
import type { SessionTable } from "../schema/session-table.js"
import { HASH_PREFIX_LENGTH } from "../token.js"

// Every change that can end or alter a session, made by this package or by
// hand, notifies the session cache's listeners in the same transaction: the
// notification is delivered when it commits, never for a rollback. A trigger
// on the session table sends it, so a DELETE typed in psql is caught too.

/** Sessions per notification: a payload stays under PostgreSQL's 8,000 bytes. */
const PREFIXES_PER_NOTIFICATION = 800

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,40}$/

/** The channel the changes of the session table `table_name` are sent on. */
export const session_changes_channel = (table_name: string): string => `${table_name}_changes`

const names = (table: SessionTable) => {
  const name = getTableName(table)
  if (!IDENTIFIER.test(name))
    throw new Error(
      `session_change_trigger_sql: the table name ${JSON.stringify(name)} is not a plain lowercase identifier`,
    )
  return {
    table: name,
    channel: session_changes_channel(name),
    function: `${name}_notify_changes`,
    triggers: [`${name}_notify_update`, `${name}_notify_delete`, `${name}_notify_truncate`],
  }
}

/**
 * The SQL that installs the notifying trigger on `table` (idempotent), its
 * statements separated as drizzle-kit's migrations are. Put it in a migration
 * of yours (`drizzle-kit generate --custom`); the standalone schema's
 * migrations include it. An UPDATE notifies unless it only moved
 * `last_seen_at` forward (a touch: it can only make a session more valid,
 * and it is the one frequent write); a DELETE notifies once per statement;
 * a TRUNCATE tells listeners to drop everything. Payloads are hash
 * prefixes, never hashes.
 */
export const session_change_trigger_sql = (table: SessionTable): string => {
  const n = names(table)
  const [on_update, on_delete, on_truncate] = n.triggers
  const prefix = `left(%s.id, ${HASH_PREFIX_LENGTH})`
  return [
    `CREATE OR REPLACE FUNCTION "${n.function}"() RETURNS trigger LANGUAGE plpgsql AS $notify$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('${n.channel}', '*');
  ELSIF TG_LEVEL = 'ROW' THEN
    PERFORM pg_notify('${n.channel}', ${prefix.replace("%s", "OLD")});
  ELSE
    PERFORM pg_notify('${n.channel}', batch.prefixes)
      FROM (SELECT string_agg(${prefix.replace("%s", "numbered")}, ',') AS prefixes
              FROM (SELECT id, row_number() OVER () - 1 AS n FROM gone) numbered
             GROUP BY numbered.n / ${PREFIXES_PER_NOTIFICATION}) batch;
  END IF;
  RETURN NULL;
END
$notify$;`,
    `CREATE OR REPLACE TRIGGER "${on_update}" AFTER UPDATE ON "${n.table}" FOR EACH ROW
  WHEN (OLD.id IS DISTINCT FROM NEW.id
     OR OLD.account_id IS DISTINCT FROM NEW.account_id
     OR OLD.created_at IS DISTINCT FROM NEW.created_at
     OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
     OR OLD.absolute_expires_at IS DISTINCT FROM NEW.absolute_expires_at
     OR OLD.authenticated_at IS DISTINCT FROM NEW.authenticated_at
     OR OLD.client_ip IS DISTINCT FROM NEW.client_ip
     OR OLD.user_agent IS DISTINCT FROM NEW.user_agent
     OR NEW.last_seen_at < OLD.last_seen_at)
  EXECUTE FUNCTION "${n.function}"();`,
    `CREATE OR REPLACE TRIGGER "${on_delete}" AFTER DELETE ON "${n.table}" REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION "${n.function}"();`,
    `CREATE OR REPLACE TRIGGER "${on_truncate}" AFTER TRUNCATE ON "${n.table}"
  FOR EACH STATEMENT EXECUTE FUNCTION "${n.function}"();`,
  ].join("\n--> statement-breakpoint\n")
}

/** Fails, naming what to do, unless `table` has the notifying triggers (`session_change_trigger_sql`). */
export const require_change_trigger = (table: SessionTable): Effect.Effect<void, DbError, Db> => {
  const n = names(table)
  return db_query("session_cache.check_trigger", (db) =>
    db.execute(
      sql`SELECT count(*)::int AS found FROM pg_trigger WHERE tgrelid = to_regclass(${n.table}) AND tgname = ANY(${sql.raw(`ARRAY['${n.triggers.join("','")}']`)}) AND tgenabled <> 'D'`,
    ),
  ).pipe(
    Effect.flatMap((result) => {
      const found = (result as unknown as { rows: Array<{ found: number }> }).rows[0]?.found ?? 0
      return found === n.triggers.length
        ? Effect.void
        : Effect.fail(
            new DbError({
              operation: "session_cache.check_trigger",
              reason: "other",
              message:
                `session_cache.check_trigger failed: ${n.table} lacks the triggers that tell the session cache of changes ` +
                `(found ${found} of ${n.triggers.length}): apply the SQL of session_change_trigger_sql(${n.table}) ` +
                "(exported by effect-session-repo) in a migration of yours; the standalone schema's migrate does it",
            }),
          )
    }),
  )
}
