CREATE TABLE "auth_session_audit" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "auth_session_audit_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"tx" "xid8" DEFAULT pg_current_xact_id() NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"kind" text NOT NULL,
	"reason" text,
	"account_id" uuid,
	"session" text,
	"count" integer DEFAULT 1 NOT NULL,
	"client_ip" text,
	"user_agent" text
);
--> statement-breakpoint
CREATE INDEX "auth_session_audit_tx_id_idx" ON "auth_session_audit" USING btree ("tx","id");--> statement-breakpoint
CREATE INDEX "auth_session_audit_account_id_idx" ON "auth_session_audit" USING btree ("account_id","id");--> statement-breakpoint
CREATE INDEX "auth_session_audit_at_idx" ON "auth_session_audit" USING btree ("at");