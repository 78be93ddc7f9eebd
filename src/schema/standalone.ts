import { sql } from "drizzle-orm"
import { pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core"
import { session_audit_table } from "./audit-table.js"
import { session_table } from "./session-table.js"

// The standalone schema: the library's own account table, for applications
// without one (and the example app). Its migrations ship in drizzle/.

export const account = pgTable(
  "account",
  {
    id: uuid().primaryKey().defaultRandom(),
    username: text().notNull(),
    created_at: timestamp({ withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("account_username_lower_key").on(sql`lower(${t.username})`)],
)

export const auth_session = session_table({ account_id: account.id, label: account.username })

/** Every session lifecycle event of `auth_session`, written by the change's own statement. */
export const auth_session_audit = session_audit_table(auth_session)

export type Account = typeof account.$inferSelect
