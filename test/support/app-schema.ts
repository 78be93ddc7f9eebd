import { generateDrizzleJson, generateMigration } from "drizzle-kit/api"
import { sql } from "drizzle-orm"
import { bigserial, pgTable, serial, text, uuid, varchar } from "drizzle-orm/pg-core"
import { Effect } from "effect"
import { Db, type SessionTable, session_table } from "../../src/index.ts"

// An application's own schema, as an adopting team writes it: a users table
// of its own (one per key type here) and the session table defined against
// it, created by drizzle-kit from these definitions, never by the library.

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

const app_schema = {
  users,
  user_session,
  uuid_users,
  uuid_user_session,
  text_users,
  text_user_session,
  varchar_users,
  varchar_user_session,
  bigint_users,
  bigint_user_session,
}

/** Creates the app's tables with the SQL drizzle-kit generates for them. */
export const apply_app_schema = Db.use((db) =>
  Effect.promise(async () => {
    const statements = await generateMigration(generateDrizzleJson({}), generateDrizzleJson(app_schema))
    for (const statement of statements) await db.execute(sql.raw(statement))
  }),
)

/** One of the app's account tables: how to add an account, and the session table over it. */
export interface AppAccounts {
  readonly kind: string
  readonly sessions: SessionTable
  readonly create: (email: string) => Effect.Effect<string | number | bigint, never, Db>
  /** Deletes the account row, as the app would. */
  readonly remove: (id: string | number | bigint) => Effect.Effect<void, never, Db>
  /** An id of the right type that no row has. */
  readonly missing: string | number | bigint
  /** An id of the wrong type for this key (what InvalidInput must catch). */
  readonly wrong_type: unknown
}

const insert_returning_id = (statement: ReturnType<typeof sql>) =>
  Db.use((db) =>
    Effect.promise(async () => {
      const result = (await db.execute(statement)) as unknown as { rows: Array<{ id: unknown }> }
      return result.rows[0]?.id
    }),
  )

const delete_account = (
  table: typeof users | typeof uuid_users | typeof text_users | typeof varchar_users | typeof bigint_users,
  id: unknown,
) =>
  Db.use((db) => Effect.promise(() => db.execute(sql`DELETE FROM ${table} WHERE ${table.id} = ${id}`))).pipe(
    Effect.asVoid,
  )

export const app_accounts: ReadonlyArray<AppAccounts> = [
  {
    kind: "serial integer",
    sessions: user_session,
    remove: (id) => delete_account(users, id),
    create: (email) =>
      Effect.map(insert_returning_id(sql`INSERT INTO users (email) VALUES (${email}) RETURNING id`), Number),
    missing: 2_000_000_000,
    wrong_type: "1",
  },
  {
    kind: "uuid",
    sessions: uuid_user_session,
    remove: (id) => delete_account(uuid_users, id),
    create: (email) =>
      Effect.map(
        insert_returning_id(sql`INSERT INTO uuid_users (email) VALUES (${email}) RETURNING id`),
        String,
      ),
    missing: "00000000-0000-4000-8000-000000000000",
    wrong_type: 42,
  },
  {
    kind: "text",
    sessions: text_user_session,
    remove: (id) => delete_account(text_users, id),
    create: (email) =>
      Effect.map(
        insert_returning_id(
          sql`INSERT INTO text_users (id, email) VALUES (${`u_${email}`}, ${email}) RETURNING id`,
        ),
        String,
      ),
    missing: "nobody",
    wrong_type: 7,
  },
  {
    kind: "varchar(16)",
    sessions: varchar_user_session,
    remove: (id) => delete_account(varchar_users, id),
    create: (email) =>
      Effect.map(
        insert_returning_id(
          sql`INSERT INTO varchar_users (id, email) VALUES (${email.slice(0, 16)}, ${email}) RETURNING id`,
        ),
        String,
      ),
    missing: "nobody",
    // one character longer than the key holds
    wrong_type: "x".repeat(17),
  },
  {
    kind: "bigint",
    sessions: bigint_user_session,
    remove: (id) => delete_account(bigint_users, id),
    create: (email) =>
      Effect.map(
        insert_returning_id(sql`INSERT INTO bigint_users (email) VALUES (${email}) RETURNING id`),
        (id) => BigInt(id as string),
      ),
    missing: 2n ** 62n,
    wrong_type: 5,
  },
]
