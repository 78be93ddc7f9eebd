import { pgTable, serial, text } from "drizzle-orm/pg-core"
import { session_table } from "effect-session-repo/schema"

export const users = pgTable("users", {
  id: serial("id").primaryKey(),
  email: text("email").notNull().unique(),
})

// Sessions belong to the app's users: serial ids, deleted with their user.
export const user_session = session_table({ account_id: users.id, label: users.email, name: "user_session" })

declare module "effect-session-repo" {
  interface Register {
    readonly session_table: typeof user_session
  }
}
