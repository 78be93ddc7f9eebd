// The admin CLI's commands: migrate, cleanup, sessions list / revoke. They run
// on the standalone schema, or with --schema on the app's own session table.
// The database comes from DATABASE_URL, else PGlite under DATA_DIR; with
// neither set and no .data/pglite, it stops and says so.
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { eq, lte, type SQL, sql } from "drizzle-orm"
import { Clock, Config, Console, Effect, Layer, Option, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { DEFAULT_DATA_DIR, layer_database_from_config } from "../db/from-config.js"
import { migrate } from "../db/migrate.js"
import { db_query } from "../db/query.js"
import type { RegisteredSessionTable } from "../schema/register.js"
import { type AnyAccountId, session_table_definition } from "../schema/session-table.js"
import { auth_session } from "../schema/standalone.js"
import { CurrentSessionTable } from "../session/current-session-table.js"
import { InvalidInput } from "../session/errors.js"
import { require_account_id, require_list_limit } from "../session/input.js"
import { layer_session_policy_from_config, make_session_policy, SessionPolicy } from "../session/policy.js"
import { query_session_cleanup_expired } from "../session/queries.js"
import { SessionRepo, type SessionRepoShape } from "../session/repo.js"

/** A mistake in how the CLI was called or where it points; printed as one line. */
export class CliUsageError extends Schema.TaggedError<CliUsageError>()("CliUsageError", {
  message: Schema.String,
}) {}

const schema_flag = Flag.String("schema").pipe(
  Flag.withDescription(
    "a module of your app exporting its session table (made by session_table): run on that table, not the standalone one",
  ),
  Flag.optional,
)
const table_flag = Flag.String("table").pipe(
  Flag.withDescription("the export to use when the --schema module exports several session tables"),
  Flag.optional,
)
const verbose_flag = Flag.Boolean("verbose").pipe(
  Flag.withDescription("print the whole error, stack included"),
  Flag.withDefault(false),
)

/** The repo, whatever the key type of the table it runs on (the CLI serves every app). */
const any_key_repo = SessionRepo as unknown as Effect.Effect<
  SessionRepoShape<AnyAccountId>,
  never,
  SessionRepo
>

/** An account by its id, or by the label column the admin list shows (a username, an email). */
const resolve_account = (id_or_label: string) =>
  Effect.gen(function* () {
    const table = yield* CurrentSessionTable
    const first_account = (condition: SQL) =>
      db_query("find_account", (db) =>
        db.select({ id: table.account_key }).from(table.accounts).where(condition).limit(1),
      ).pipe(Effect.map((rows) => rows[0]?.id as AnyAccountId | undefined))
    // an id of the key's type first (digits are a number for an integer key), else a label
    const digits = /^-?\d{1,19}$/.test(id_or_label)
    const id = yield* Effect.option(
      require_account_id(
        table,
        digits && table.account_id_kind === "bigint"
          ? BigInt(id_or_label)
          : digits && table.account_id_kind !== "uuid" && table.account_id_kind !== "text"
            ? Number(id_or_label)
            : id_or_label,
      ),
    )
    const found =
      (Option.isSome(id) ? yield* first_account(eq(table.account_key, id.value)) : undefined) ??
      (yield* first_account(eq(sql`lower(${table.label}::text)`, id_or_label.toLowerCase())))
    if (found === undefined)
      return yield* new InvalidInput({ field: "account", message: "no account with that id or label" })
    return found
  })

const account_flag = Flag.String("account").pipe(
  Flag.withDescription("account id, or its label (username, email)"),
)

/**
 * Session tables that are not the standalone one over `account`: the app's
 * own (their id check is named by session_table), which the standalone
 * migrations must never be applied beside.
 */
const app_session_tables = db_query("find_session_tables", async (db) => {
  const result = await db.execute(sql`
    SELECT c.conrelid::regclass::text AS sessions, f.confrelid::regclass::text AS accounts
    FROM pg_constraint c
    LEFT JOIN pg_constraint f ON f.conrelid = c.conrelid AND f.contype = 'f'
    WHERE c.contype = 'c' AND c.conname LIKE '%\\_id\\_is\\_hash'`)
  const rows = (result as unknown as { rows: Array<{ sessions: string; accounts: string | null }> }).rows
  return rows.filter((row) => !(row.sessions === "auth_session" && row.accounts === "account"))
})

export const cli = Command.make("effect-session-repo").pipe(
  Command.withSharedFlags({ schema: schema_flag, table: table_flag, verbose: verbose_flag }),
  Command.withDescription("Admin commands for effect-session-repo"),
)

const migrate_command = Command.make("migrate", {}, () =>
  Effect.gen(function* () {
    const root = yield* cli
    if (Option.isSome(root.schema))
      return yield* new CliUsageError({
        message:
          "migrate applies the standalone schema; your session table's migrations are your drizzle-kit's (drizzle-kit generate, then drizzle-kit migrate)",
      })
    const found = yield* app_session_tables
    if (found.length > 0)
      return yield* new CliUsageError({
        message:
          `this database has your app's session table ${found.map((t) => `${t.sessions} (over ${t.accounts})`).join(", ")}: ` +
          "the standalone tables do not belong beside it; migrate it with your drizzle-kit, and give the other commands --schema <your schema module>",
      })
    yield* migrate
    yield* Console.log("migrations applied")
  }),
).pipe(Command.withDescription("Apply the standalone schema's pending migrations"))

/** Prints one batch's progress over the last line of a terminal. */
const progress_line = (deleted: number, began_ms: number, now_ms: number, batches_left: number | undefined) =>
  Effect.sync(() => {
    const seconds = Math.max((now_ms - began_ms) / 1000, 0.001)
    const left = batches_left === undefined ? "" : `, ${batches_left} batches left`
    process.stdout.write(`\r${deleted} rows deleted, ${Math.round(deleted / seconds)} rows/s${left}   `)
  })

const cleanup_command = Command.make(
  "cleanup",
  {
    batch_size: Flag.Int("batch-size").pipe(Flag.withDescription("rows per DELETE"), Flag.withDefault(1000)),
  },
  Effect.fn(function* ({ batch_size }) {
    const table = yield* CurrentSessionTable
    const policy = yield* make_session_policy({ cleanup_batch_size: batch_size })
    const began = yield* Clock.currentTimeMillis
    const on_terminal = process.stdout.isTTY === true
    // how much there is to do, for the progress line
    const expired = on_terminal
      ? yield* db_query("count_expired", (db) =>
          db.$count(table.sessions, lte(table.sessions.expires_at, new Date(began))),
        )
      : undefined
    let batches = 0
    const total = yield* query_session_cleanup_expired({
      on_batch: (_, total) =>
        Effect.gen(function* () {
          batches++
          if (!on_terminal) return
          const left =
            expired === undefined ? undefined : Math.max(0, Math.ceil((expired - total) / batch_size))
          yield* progress_line(total, began, yield* Clock.currentTimeMillis, left)
        }),
    }).pipe(Effect.provideService(SessionPolicy, policy))
    if (on_terminal) yield* Effect.sync(() => process.stdout.write("\n"))
    const seconds = ((yield* Clock.currentTimeMillis) - began) / 1000
    yield* Console.log(`expired sessions deleted: ${total} in ${batches} batches, ${seconds.toFixed(1)} s`)
  }),
).pipe(Command.withDescription("Delete expired sessions in bounded batches"))

const list_command = Command.make(
  "list",
  {
    account: account_flag.pipe(Flag.optional),
    limit: Flag.Int("limit").pipe(Flag.withDescription("rows to show (1-1000)"), Flag.withDefault(200)),
  },
  Effect.fn(function* ({ account, limit }) {
    const repo = yield* any_key_repo
    const count = yield* require_list_limit(limit)
    const rows = Option.isSome(account)
      ? (yield* repo.list_for_account(yield* resolve_account(account.value), { limit: count })).map((s) => ({
          ...s,
          username: "",
        }))
      : yield* repo.list_all_active({ limit: count })
    for (const s of rows) {
      // a 12-char prefix identifies a session without printing its id
      yield* Console.log(
        [
          s.id.slice(0, 12),
          s.username || String(s.account_id),
          s.last_seen_at.toISOString(),
          s.expires_at.toISOString(),
        ].join("  "),
      )
    }
    yield* Console.log(`${rows.length} live session(s)`)
  }),
).pipe(Command.withDescription("List live sessions: all accounts, or one with --account"))

const revoke_command = Command.make(
  "revoke",
  { account: account_flag },
  Effect.fn(function* ({ account }) {
    const repo = yield* any_key_repo
    const revoked = yield* repo.revoke_all_for_account(yield* resolve_account(account))
    yield* Console.log(`sessions revoked: ${revoked}`)
  }),
).pipe(Command.withDescription("Revoke every session of an account"))

const sessions_command = Command.make("sessions").pipe(
  Command.withDescription("Inspect and revoke sessions"),
  Command.withSubcommands([list_command, revoke_command]),
)

export const commands = cli.pipe(
  Command.withSubcommands([migrate_command, cleanup_command, sessions_command]),
)

/** Neither DATABASE_URL nor a data directory: nothing to open, and nothing is created. */
export class NoDatabase extends Schema.TaggedError<NoDatabase>()("NoDatabase", { message: Schema.String }) {}

/**
 * The configured database. Without DATABASE_URL or DATA_DIR, only an existing
 * default data directory is opened: a command run in the wrong shell must not
 * create an empty database and then fail on its missing tables.
 */
const cli_database = Layer.unwrap(
  Effect.gen(function* () {
    const database_url = yield* Config.option(Config.String("DATABASE_URL"))
    const data_dir = yield* Config.option(Config.String("DATA_DIR"))
    if (Option.isNone(database_url) && Option.isNone(data_dir) && !existsSync(DEFAULT_DATA_DIR))
      return yield* new NoDatabase({
        message:
          "no database: set DATABASE_URL to your PostgreSQL (postgres://user@host:5432/db), " +
          `or DATA_DIR to an embedded PGlite data directory (the example app keeps its own in ${DEFAULT_DATA_DIR})`,
      })
    return layer_database_from_config
  }),
)

/** The session table the --schema module exports (the --table one, if several), or the standalone one. */
export const session_table_of = (schema: Option.Option<string>, table: Option.Option<string>) =>
  Effect.gen(function* () {
    if (Option.isNone(schema)) return auth_session as RegisteredSessionTable
    const path = resolve(schema.value)
    const module = yield* Effect.tryPromise({
      try: () => import(pathToFileURL(path).href) as Promise<Record<string, unknown>>,
      catch: (error) =>
        new CliUsageError({
          message: `--schema ${schema.value}: the module did not load (${error instanceof Error ? error.message.split("\n")[0] : String(error)})`,
        }),
    })
    const tables = Object.entries(module).filter(
      ([, value]) =>
        typeof value === "object" && value !== null && session_table_definition(value) !== undefined,
    )
    const chosen = Option.isSome(table) ? tables.filter(([name]) => name === table.value) : tables
    if (chosen.length === 1) return chosen[0]?.[1] as RegisteredSessionTable
    return yield* new CliUsageError({
      message:
        tables.length === 0
          ? `--schema ${schema.value} exports no table made by session_table`
          : `--schema ${schema.value} exports the session tables ${tables.map(([name]) => name).join(", ")}: name one with --table`,
    })
  })

/** What the commands run on: the repo on the chosen table over the configured database, the policy from the environment. */
export const cli_services = (root: {
  readonly schema: Option.Option<string>
  readonly table: Option.Option<string>
}) =>
  Layer.unwrap(
    Effect.map(session_table_of(root.schema, root.table), (table) =>
      SessionRepo.layer(table).pipe(
        Layer.provideMerge(layer_session_policy_from_config),
        Layer.provideMerge(cli_database),
      ),
    ),
  )

/** One line for a failure: "effect-session-repo: <what, and what to do>". */
export const failure_line = (error: unknown): string =>
  `effect-session-repo: ${(error instanceof Error ? error.message : String(error)).split("\n")[0]}`
