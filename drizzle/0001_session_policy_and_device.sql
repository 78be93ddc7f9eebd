ALTER TABLE "auth_session" ADD COLUMN "authenticated_at" timestamp with time zone DEFAULT '1970-01-01T00:00:00Z' NOT NULL;--> statement-breakpoint
ALTER TABLE "auth_session" ADD COLUMN "absolute_expires_at" timestamp with time zone DEFAULT (now() + interval '90 days') NOT NULL;--> statement-breakpoint
ALTER TABLE "auth_session" ADD COLUMN "client_ip" text;--> statement-breakpoint
ALTER TABLE "auth_session" ADD COLUMN "user_agent" text;--> statement-breakpoint
ALTER TABLE "auth_session" ADD CONSTRAINT "auth_session_user_agent_length" CHECK (char_length("auth_session"."user_agent") <= 512);--> statement-breakpoint
-- Sessions from before these columns count as authenticated when they were created, so a session older than the default 90 days ends now instead of 90 days after the upgrade.
UPDATE "auth_session" SET "authenticated_at" = "created_at", "absolute_expires_at" = "created_at" + interval '90 days', "expires_at" = LEAST("expires_at", "created_at" + interval '90 days');
