import { type AnyColumn, getTableName, sql, type Table } from "drizzle-orm"
import {
  type AnyPgColumn,
  bigint,
  check,
  index,
  integer,
  type PgColumnBuilderBase,
  pgTable,
  text,
  timestamp,
  uuid,
  varchar,
} from "drizzle-orm/pg-core"
import type { AccountId } from "./register.js"

// The session table, defined against whichever account table owns the
// sessions: the application's own (its users table, exported from its schema
// so its drizzle-kit migrates it), or the library's standalone `account`.
// This file imports Drizzle only: drizzle-kit loads it with the app's schema.

/**
 * An account id of any key type. The package's functions are typed by the
 * registered session table's id (`AccountId`, see ./register.ts); this is
 * what every key column can hold.
 */
export type AnyAccountId = string | number | bigint

/** How the account key column stores its ids; decides how ids are checked. */
export type AccountIdKind = "uuid" | "text" | "integer" | "bigint_number" | "bigint"

const KIND_OF_COLUMN_TYPE: Readonly<Record<string, AccountIdKind>> = {
  PgUUID: "uuid",
  PgText: "text",
  PgVarchar: "text",
  PgInteger: "integer",
  PgSerial: "integer",
  PgBigInt53: "bigint_number",
  PgBigSerial53: "bigint_number",
  PgBigInt64: "bigint",
  PgBigSerial64: "bigint",
}

export const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: "date" })

/** A column holding account ids, of the same SQL type as the account key. */
export const account_id_builder = (key: AnyPgColumn, kind: AccountIdKind) => {
  switch (kind) {
    case "uuid":
      return uuid("account_id")
    case "text": {
      const length = (key as unknown as { length?: number }).length
      return key.columnType !== "PgVarchar"
        ? text("account_id")
        : length === undefined
          ? varchar("account_id")
          : varchar("account_id", { length })
    }
    case "integer":
      return integer("account_id")
    case "bigint_number":
      return bigint("account_id", { mode: "number" })
    case "bigint":
      return bigint("account_id", { mode: "bigint" })
  }
}

const build_session_table = <AccountIdColumn extends PgColumnBuilderBase>(
  name: string,
  account_id: AccountIdColumn,
) =>
  pgTable(
    name,
    {
      /** The blake3 hash of the cookie's token, never the token itself; a revoke deletes the row. */
      id: text("id").primaryKey(),
      account_id,
      created_at: timestamptz("created_at").notNull().defaultNow(),
      /** Ends the session; slides forward on use, never past `absolute_expires_at`. */
      expires_at: timestamptz("expires_at").notNull(),
      last_seen_at: timestamptz("last_seen_at").notNull().defaultNow(),
      /**
       * `last_seen_at` cut to the hour (UTC): what the admin list's index
       * holds. A touch within the same hour writes it unchanged, so the touch
       * changes no indexed column and PostgreSQL writes it as a HOT update (no
       * index entry). Rows from before the column existed get the hour of the
       * migration: no later than any hour written after it, and no earlier
       * than their own, so the admin list's order and its idle bound stay
       * exact without rewriting them.
       */
      last_seen_hour: timestamptz("last_seen_hour").notNull().default(sql`date_trunc('hour'::text, now())`),
      /**
       * When the user last proved a credential: the creation, or a
       * re-authentication. Its default only serves rows that existed before the
       * column did (new rows always set it): the epoch, so such a session is never
       * fresh for `require_fresh_session` until the user proves a credential.
       * (Defaults are written as PostgreSQL prints them back, so drizzle-kit
       * push finds nothing to change on an unchanged schema.)
       */
      authenticated_at: timestamptz("authenticated_at").notNull().default(sql`'1970-01-01 00:00:00+00'`),
      /**
       * The end no extension passes: `authenticated_at` plus the policy's absolute
       * lifetime. Its default, for rows that existed before the column did: the
       * default policy's 90 days, counted from the migration.
       */
      absolute_expires_at: timestamptz("absolute_expires_at")
        .notNull()
        .default(sql`(now() + '90 days'::interval)`),
      /** The client's address at creation, as the policy stores it (full, truncated or not at all). */
      client_ip: text("client_ip"),
      /** The client's User-Agent at creation, at most 512 characters. */
      user_agent: text("user_agent"),
    },
    (t) => [
      // defence in depth: a raw token (base64url, 43 chars) can never be stored as an id
      check(`${name}_id_is_hash`, sql`${t.id} ~ '^[0-9a-f]{64}$'`),
      check(`${name}_user_agent_length`, sql`char_length(${t.user_agent}) <= 512`),
      // limit enforcement, listing per account (newest first) and revoke-all
      index(`${name}_account_created_idx`).on(t.account_id, t.created_at, t.id),
      // batched cleanup of expired rows
      index(`${name}_expires_at_idx`).on(t.expires_at),
      // admin list, most recent activity first: by hour, then sorted within the
      // hour (an index on last_seen_at itself would make every touch write it)
      index(`${name}_last_seen_hour_idx`).on(t.last_seen_hour),
    ],
  )

// What the account id column looks like in TypeScript, by the key's data type.
const string_key = () => text("account_id").notNull()
const number_key = () => integer("account_id").notNull()
const bigint_key = () => bigint("account_id", { mode: "bigint" }).notNull()
// distributive: SessionTable (of any AccountId) is the union of the three
type AccountIdColumnFor<Data> = Data extends bigint
  ? ReturnType<typeof bigint_key>
  : Data extends number
    ? ReturnType<typeof number_key>
    : ReturnType<typeof string_key>

/** A session table whose account ids are `Data` (string, number or bigint); any of them by default. */
export type SessionTable<Data extends AnyAccountId = AnyAccountId> = Data extends AnyAccountId
  ? ReturnType<typeof build_session_table<AccountIdColumnFor<Data>>>
  : never

/** What the session queries need to know besides the session table itself. */
export interface SessionTableDefinition {
  readonly sessions: SessionTable
  /** The account table and its key column, which the foreign key references. */
  readonly accounts: Table
  readonly account_key: AnyPgColumn
  /** The account column the admin list shows (as text), e.g. an email. */
  readonly label: AnyColumn
  readonly account_id_kind: AccountIdKind
  /** The longest text id the key holds, in characters (a varchar's length). */
  readonly account_id_max_length?: number
}

// Kept on the table itself (not in a module-level map), so it survives two
// copies of this package loaded side by side (the app's schema and its server).
const DEFINITION = Symbol.for("effect-session-repo/SessionTableDefinition")

export interface SessionTableOptions<Key extends AnyPgColumn> {
  /**
   * The primary key column of the account table the sessions belong to:
   * uuid, text, varchar, integer/serial or bigint/bigserial. Its foreign key
   * cascades, so deleting an account deletes its sessions.
   */
  readonly account_id: Key
  /** A column of the same table the admin list shows, e.g. `users.email`. */
  readonly label: AnyPgColumn
  /** The table's name; "auth_session" by default. */
  readonly name?: string
}

/**
 * Defines the session table against an account table you own. Export the
 * result from your Drizzle schema so that drizzle-kit generates and applies
 * it with your migrations, and give it to `layer_session_table`.
 */
export const session_table = <Key extends AnyPgColumn>(
  options: SessionTableOptions<Key>,
): SessionTable<Key["_"]["data"] & AnyAccountId> => {
  const key = options.account_id
  const account_id_kind = KIND_OF_COLUMN_TYPE[key.columnType]
  if (account_id_kind === undefined)
    throw new Error(
      `session_table: the account key ${getTableName(key.table)}.${key.name} is ${key.columnType}; ` +
        "supported: uuid, text, varchar, integer, serial, bigint, bigserial",
    )
  if (options.label.table !== key.table)
    throw new Error("session_table: the label must be a column of the account key's table")
  const sessions = build_session_table(
    options.name ?? "auth_session",
    account_id_builder(key, account_id_kind)
      .notNull()
      .references(() => key, { onDelete: "cascade" }),
  ) as unknown as SessionTable
  const max_length =
    key.columnType === "PgVarchar" ? (key as unknown as { length?: number }).length : undefined
  const definition: SessionTableDefinition = {
    sessions,
    accounts: key.table,
    account_key: key,
    label: options.label,
    account_id_kind,
    ...(max_length === undefined ? {} : { account_id_max_length: max_length }),
  }
  Object.defineProperty(sessions, DEFINITION, { value: definition, enumerable: false })
  return sessions as unknown as SessionTable<Key["_"]["data"] & AnyAccountId>
}

/** The definition `session_table` attached to `table`, if it made it. */
export const session_table_definition = (table: object): SessionTableDefinition | undefined =>
  (table as { [DEFINITION]?: SessionTableDefinition })[DEFINITION]

/** The account id type of a session table: its key column's type. */
export type AccountIdOf<Table extends SessionTable> = Table["$inferSelect"]["account_id"]

/** A session row. `account_id` has the type of the registered session table's key column. */
export interface AuthSession<Id extends AnyAccountId = AccountId> {
  readonly id: string
  readonly account_id: Id
  readonly created_at: Date
  readonly expires_at: Date
  readonly last_seen_at: Date
  readonly authenticated_at: Date
  readonly absolute_expires_at: Date
  /** The client address at creation (as the policy stores it), if one was given. */
  readonly client_ip: string | null
  /** The client's User-Agent at creation, if one was given. */
  readonly user_agent: string | null
}

/** A session row with its account's label (the standalone schema's username). */
export type AuthSessionWithUsername<Id extends AnyAccountId = AccountId> = AuthSession<Id> & {
  readonly username: string
}
