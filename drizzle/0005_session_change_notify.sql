-- Tells the session cache's listeners of every change to a session (src/session/change-trigger.ts).
CREATE OR REPLACE FUNCTION "auth_session_notify_changes"() RETURNS trigger LANGUAGE plpgsql AS $notify$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('auth_session_changes', '*');
  ELSIF TG_LEVEL = 'ROW' THEN
    PERFORM pg_notify('auth_session_changes', left(OLD.id, 8));
  ELSE
    PERFORM pg_notify('auth_session_changes', batch.prefixes)
      FROM (SELECT string_agg(left(numbered.id, 8), ',') AS prefixes
              FROM (SELECT id, row_number() OVER () - 1 AS n FROM gone) numbered
             GROUP BY numbered.n / 800) batch;
  END IF;
  RETURN NULL;
END
$notify$;
--> statement-breakpoint
CREATE OR REPLACE TRIGGER "auth_session_notify_update" AFTER UPDATE ON "auth_session" FOR EACH ROW
  WHEN (OLD.id IS DISTINCT FROM NEW.id
     OR OLD.account_id IS DISTINCT FROM NEW.account_id
     OR OLD.created_at IS DISTINCT FROM NEW.created_at
     OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
     OR OLD.absolute_expires_at IS DISTINCT FROM NEW.absolute_expires_at
     OR OLD.authenticated_at IS DISTINCT FROM NEW.authenticated_at
     OR OLD.client_ip IS DISTINCT FROM NEW.client_ip
     OR OLD.user_agent IS DISTINCT FROM NEW.user_agent
     OR NEW.last_seen_at < OLD.last_seen_at)
  EXECUTE FUNCTION "auth_session_notify_changes"();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER "auth_session_notify_delete" AFTER DELETE ON "auth_session" REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION "auth_session_notify_changes"();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER "auth_session_notify_truncate" AFTER TRUNCATE ON "auth_session"
  FOR EACH STATEMENT EXECUTE FUNCTION "auth_session_notify_changes"();
