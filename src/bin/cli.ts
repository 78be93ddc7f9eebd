// The admin CLI's commands: migrate, cleanup, sessions list / revoke, on the
// standalone schema. The database comes from DATABASE_URL, else PGlite under
// DATA_DIR; with neither set and no .data/pglite, it stops and says so.
import { existsSync } from "node:fs"
import { eq, sql } from "drizzle-orm"
import { Config, Console, Effect, Layer, Option, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { DbError } from "../db/errors.js"
import { DEFAULT_DATA_DIR, layer_database_from_config } from "../db/from-config.js"
import { Db } from "../db/handle.js"
import { migrate } from "../db/migrate.js"
import { account, auth_session } from "../schema/standalone.js"
import { layer_current_session_table } from "../session/current-session-table.js"
import { InvalidInput } from "../session/errors.js"
import { require_list_limit } from "../session/input.js"
import { layer_session_policy, make_session_policy, SessionPolicy } from "../session/policy.js"
import { query_session_cleanup_expired } from "../session/queries.js"
import { SessionRepo } from "../session/repo.js"

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** An account id, or the id of the account with that username. */
const resolve_account = (id_or_username: string) =>
  UUID.test(id_or_username)
    ? Effect.succeed(id_or_username)
    : Db.use((db) =>
        Effect.tryPromise({
          try: () =>
            db
              .select({ id: account.id })
              .from(account)
              .where(eq(sql`lower(${account.username})`, id_or_username.toLowerCase())),
          catch: (error) => DbError.from("find_account", error),
        }),
      ).pipe(
        Effect.flatMap((rows) =>
          rows[0] === undefined
            ? Effect.fail(
                new InvalidInput({ field: "account", message: "no account with that id or username" }),
              )
            : Effect.succeed(rows[0].id),
        ),
      )

const account_flag = Flag.String("account").pipe(Flag.withDescription("account id or username"))

const migrate_command = Command.make("migrate", {}, () =>
  Effect.andThen(migrate, Console.log("migrations applied")),
).pipe(Command.withDescription("Apply pending database migrations"))

const cleanup_command = Command.make(
  "cleanup",
  {
    batch_size: Flag.Int("batch-size").pipe(Flag.withDescription("rows per DELETE"), Flag.withDefault(1000)),
  },
  Effect.fn(function* ({ batch_size }) {
    const policy = yield* make_session_policy({ cleanup_batch_size: batch_size })
    const total = yield* query_session_cleanup_expired({
      on_batch: (deleted, total) => Console.log(`batch: ${deleted} deleted (${total} so far)`),
    }).pipe(Effect.provideService(SessionPolicy, policy))
    yield* Console.log(`expired sessions deleted: ${total}`)
  }),
).pipe(Command.withDescription("Delete expired sessions in bounded batches"))

const list_command = Command.make(
  "list",
  {
    account: account_flag.pipe(Flag.optional),
    limit: Flag.Int("limit").pipe(Flag.withDescription("rows to show (1-1000)"), Flag.withDefault(200)),
  },
  Effect.fn(function* ({ account, limit }) {
    const repo = yield* SessionRepo
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
          s.username || s.account_id,
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
    const repo = yield* SessionRepo
    const revoked = yield* repo.revoke_all_for_account(yield* resolve_account(account))
    yield* Console.log(`sessions revoked: ${revoked}`)
  }),
).pipe(Command.withDescription("Revoke every session of an account"))

const sessions_command = Command.make("sessions").pipe(
  Command.withDescription("Inspect and revoke sessions"),
  Command.withSubcommands([list_command, revoke_command]),
)

export const cli = Command.make("effect-session-repo").pipe(
  Command.withDescription("Admin commands for effect-session-repo"),
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

/** What the commands run on: the repo over the configured database. */
export const CliServices = SessionRepo.layer(auth_session).pipe(
  Layer.provideMerge(layer_current_session_table(auth_session)),
  Layer.provideMerge(layer_session_policy()),
  Layer.provideMerge(cli_database),
)
