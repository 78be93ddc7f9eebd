import { bigserial, pgTable, serial, text, uuid, varchar } from "drizzle-orm/pg-core"
import { session_table } from "../../src/schema/index.ts"

// An application's own schema, as an adopting team writes it: a users table
// of its own (one per key type here) and the session table defined against
// it. Drizzle only, as a schema file is (the CLI's --schema loads it).

export const users = pgTable("users", {
  id: serial("id").primaryKey(),
  email: text("email").notNull().unique(),
})
export const user_session = session_table({ account_id: users.id, label: users.email, name: "user_session" })

export const uuid_users = pgTable("uuid_users", {
  id: uuid("id").primaryKey().defaultRandom(),
  email: text("email").notNull(),
})
export const uuid_user_session = session_table({
  account_id: uuid_users.id,
  label: uuid_users.email,
  name: "uuid_user_session",
})

export const text_users = pgTable("text_users", {
  id: text("id").primaryKey(),
  email: text("email").notNull(),
})
export const text_user_session = session_table({
  account_id: text_users.id,
  label: text_users.email,
  name: "text_user_session",
})

export const varchar_users = pgTable("varchar_users", {
  id: varchar("id", { length: 16 }).primaryKey(),
  email: text("email").notNull(),
})
export const varchar_user_session = session_table({
  account_id: varchar_users.id,
  label: varchar_users.email,
  name: "varchar_user_session",
})

export const bigint_users = pgTable("bigint_users", {
  id: bigserial("id", { mode: "bigint" }).primaryKey(),
  email: text("email").notNull(),
})
export const bigint_user_session = session_table({
  account_id: bigint_users.id,
  label: bigint_users.email,
  name: "bigint_user_session",
})
