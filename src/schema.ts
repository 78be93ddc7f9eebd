import { sql } from "drizzle-orm"
import { check, index, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core"

const timestamptz = () => timestamp({ withTimezone: true, mode: "date" })

export const account = pgTable(
  "account",
  {
    id: uuid().primaryKey().defaultRandom(),
    username: text().notNull(),
    created_at: timestamptz().notNull().defaultNow(),
  },
  (t) => [uniqueIndex("account_username_lower_key").on(sql`lower(${t.username})`)],
)

/**
 * One row per session. `id` is the blake3 hash of the cookie's token, never the
 * token itself; a revoke deletes the row.
 */
export const auth_session = pgTable(
  "auth_session",
  {
    id: text().primaryKey(),
    account_id: uuid()
      .notNull()
      .references(() => account.id, { onDelete: "cascade" }),
    created_at: timestamptz().notNull().defaultNow(),
    expires_at: timestamptz().notNull(),
    last_seen_at: timestamptz().notNull().defaultNow(),
  },
  (t) => [
    // defence in depth: a raw token (base64url, 43 chars) can never be stored as an id
    check("auth_session_id_is_hash", sql`${t.id} ~ '^[0-9a-f]{64}$'`),
    // limit enforcement, listing per account (newest first) and revoke-all
    index("auth_session_account_created_idx").on(t.account_id, t.created_at, t.id),
    // batched cleanup of expired rows
    index("auth_session_expires_at_idx").on(t.expires_at),
    // admin list, most recent activity first
    index("auth_session_last_seen_at_idx").on(t.last_seen_at),
  ],
)

export type Account = typeof account.$inferSelect
export type AuthSession = typeof auth_session.$inferSelect
export type AuthSessionWithUsername = AuthSession & { readonly username: string }
