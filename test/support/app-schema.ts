import { generateDrizzleJson, generateMigration } from "drizzle-kit/api"
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db, type SessionTable } from "../../src/index.ts"
import {
  bigint_user_session,
  bigint_users,
  text_user_session,
  text_users,
  user_session,
  users,
  uuid_user_session,
  uuid_users,
  varchar_user_session,
  varchar_users,
} from "./app-tables.ts"

export * from "./app-tables.ts"

// The app's tables (./app-tables.ts) created by drizzle-kit from their
// definitions, never by the library, and how the tests add accounts to them.

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
