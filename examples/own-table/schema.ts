// The README's "Add to an existing Drizzle app" schema; compiled by `npm run typecheck`.
import { pgTable, serial, text, uuid } from "drizzle-orm/pg-core"
import { session_table } from "effect-session-repo/schema"

// your existing users table (serial integer ids here)
export const users = pgTable("users", {
  id: serial("id").primaryKey(),
  email: text("email").notNull().unique(),
})

// the sessions, defined against it: exported, so your drizzle-kit migrates it
export const user_session = session_table({
  account_id: users.id, // uuid, text, varchar, integer/serial or bigint/bigserial
  label: users.email, // what the admin list shows
  name: "user_session", // default "auth_session"
})

// with uuid ids it is the same call:
export const members = pgTable("members", {
  id: uuid("id").primaryKey().defaultRandom(),
  email: text("email"),
})
export const member_session = session_table({
  account_id: members.id,
  label: members.email,
  name: "member_session",
})
