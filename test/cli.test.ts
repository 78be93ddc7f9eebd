import { execFile } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { promisify } from "node:util"
import { NodeServices } from "@effect/platform-node"
import { assert, it, layer, it as plain_it } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { Command } from "effect/cli"
import { TestClock, TestConsole } from "effect/testing"
import { cli_services, commands } from "../src/bin/cli.ts"
import { DEFAULT_SESSION_POLICY, db_query, layer_postgres, SessionPolicy } from "../src/index.ts"
import { admin_client } from "./support/admin.ts"
import { type AppAccounts, app_accounts, apply_app_schema, user_session } from "./support/app-schema.ts"
import {
  any_key_repo,
  backends,
  fresh_postgres_database,
  on_table,
  report_skipped_postgres,
  server_url,
} from "./support/backends.ts"
import { create_account, insert_session, session_rows, truncate_all } from "./support/fixtures.ts"

const SECOND = 1000
const run_cli = (...args: Array<string>) =>
  Command.runWith(commands, { version: "test" })(args).pipe(Effect.provide(NodeServices.layer))

/** The lines the CLI printed during `effect`. */
const output_of = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const before = (yield* TestConsole.logLines).length
    yield* effect
    return (yield* TestConsole.logLines).slice(before).map(String)
  })

for (const backend of backends) {
  layer(backend.layer)(`the admin CLI on ${backend.name}`, (it) => {
    it.effect("migrate applies migrations (idempotently)", () =>
      Effect.gen(function* () {
        assert.deepStrictEqual(yield* output_of(run_cli("migrate")), ["migrations applied"])
      }),
    )

    it.effect("sessions list: all accounts or one (by id or username), ids shown as prefixes only", () =>
      Effect.gen(function* () {
        yield* truncate_all
        const ann = yield* create_account("ann")
        const ben = yield* create_account("ben")
        const { session } = yield* insert_session(ann.id)
        yield* insert_session(ben.id)
        yield* insert_session(ben.id)
        const all = yield* output_of(run_cli("sessions", "list"))
        assert.strictEqual(all.at(-1), "3 live session(s)")
        assert.isTrue(all.some((line) => line.startsWith(`${session.id.slice(0, 12)}  ann  `)))
        assert.notInclude(all.join("\n"), session.id)
        const by_name = yield* output_of(run_cli("sessions", "list", "--account", "BEN"))
        assert.strictEqual(by_name.at(-1), "2 live session(s)")
        const by_id = yield* output_of(run_cli("sessions", "list", "--account", ann.id))
        assert.strictEqual(by_id.at(-1), "1 live session(s)")
      }),
    )

    it.effect("cleanup deletes expired sessions batch by batch and prints the total", () =>
      Effect.gen(function* () {
        yield* truncate_all
        const owner = yield* create_account()
        for (let i = 0; i < 5; i++) yield* insert_session(owner.id, SECOND)
        const { session: live } = yield* insert_session(owner.id)
        yield* TestClock.adjust(SECOND)
        const lines = yield* output_of(run_cli("cleanup", "--batch-size", "2"))
        // not a terminal: one line, the summary (2 + 2 + 1)
        assert.lengthOf(lines, 1)
        assert.match(lines[0] ?? "", /^expired sessions deleted: 5 in 3 batches, \d+\.\d s$/)
        assert.deepStrictEqual(
          (yield* session_rows(owner.id)).map((s) => s.id),
          [live.id],
        )
        const bad = yield* Effect.flip(run_cli("cleanup", "--batch-size", "0"))
        assert.strictEqual((bad as { _tag: string })._tag, "InvalidInput")
      }),
    )

    it.effect("sessions revoke --account revokes every session of that account only", () =>
      Effect.gen(function* () {
        const cid = yield* create_account("cid")
        const dee = yield* create_account("dee")
        yield* insert_session(cid.id)
        yield* insert_session(cid.id)
        yield* insert_session(dee.id)
        assert.deepStrictEqual(yield* output_of(run_cli("sessions", "revoke", "--account", "cid")), [
          "sessions revoked: 2",
        ])
        assert.strictEqual((yield* session_rows(cid.id)).length, 0)
        assert.strictEqual((yield* session_rows(dee.id)).length, 1)
        const unknown = yield* Effect.flip(run_cli("sessions", "revoke", "--account", "nobody"))
        assert.strictEqual((unknown as { _tag: string })._tag, "InvalidInput")
      }),
    )
  })
}

const MAIN = join(process.cwd(), "src", "bin", "main.ts")
// tsx by path, so the binary can run from any directory
const TSX = pathToFileURL(join(process.cwd(), "node_modules", "tsx", "dist", "loader.mjs")).href

plain_it("the binary without DATABASE_URL or DATA_DIR says what it needs and creates nothing", async () => {
  const root = mkdtempSync(join(tmpdir(), "esr-cli-"))
  try {
    const { DATABASE_URL: _, DATA_DIR: __, ...inherited } = process.env
    const failure = await promisify(execFile)(process.execPath, ["--import", TSX, MAIN, "migrate"], {
      env: inherited,
      cwd: root,
      timeout: 60_000,
    }).catch((error: { code: number; stdout: string; stderr: string }) => error)
    const { code, stdout, stderr } = failure as { code: number; stdout: string; stderr: string }
    assert.strictEqual(code, 1)
    // one line, no stack
    assert.strictEqual(stdout, "")
    assert.match(stderr, /^effect-session-repo: no database: set DATABASE_URL[^\n]*\n$/)
    assert.deepStrictEqual(readdirSync(root), [], "the CLI created files")
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
})

plain_it(
  "the binary entry point: --help opens no database; with DATA_DIR set, commands create it and work",
  async () => {
    const root = mkdtempSync(join(tmpdir(), "esr-cli-"))
    const data_dir = join(root, "nested", "pglite")
    try {
      const { DATABASE_URL: _, ...inherited } = process.env
      const env = { ...inherited, DATA_DIR: data_dir }
      const run = (...args: Array<string>) =>
        promisify(execFile)(process.execPath, ["--import", TSX, MAIN, ...args], { env, timeout: 60_000 })
      assert.include((await run("--help")).stdout, "sessions")
      assert.isFalse(existsSync(data_dir), "--help opened the database")
      assert.strictEqual((await run("migrate")).stdout.trim(), "migrations applied")
      const failure = await run("sessions", "revoke", "--account", "nobody").catch(
        (error: { code: number }) => error,
      )
      assert.strictEqual((failure as { code: number }).code, 1)
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  },
)

/** The binary's run with `env` on top of this process's: exit code and output, failing or not. */
const run_binary = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  promisify(execFile)(process.execPath, ["--import", TSX, MAIN, ...args], {
    env: { ...process.env, ...env },
    timeout: 60_000,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  )

plain_it("--version is the package's; an error is one line, its stack only with --verbose", async () => {
  const { version } = JSON.parse(readFileSync(join(process.cwd(), "package.json"), "utf8")) as {
    version: string
  }
  assert.strictEqual((await run_binary(["--version"], {})).stdout.trim(), `effect-session-repo v${version}`)
  const env = { DATABASE_URL: "mysql://root:hunter2@127.0.0.1/app" }
  const plain = await run_binary(["sessions", "list"], env)
  assert.strictEqual(plain.code, 1)
  assert.strictEqual(
    plain.stderr,
    "effect-session-repo: postgres.open failed: invalid_url: the database URL must start with postgres:// or postgresql:// (it starts with mysql:)\n",
  )
  const verbose = await run_binary(["sessions", "list", "--verbose"], env)
  assert.strictEqual(verbose.code, 1)
  assert.match(verbose.stderr, /\n\s+at /)
  assert.notInclude(plain.stderr + verbose.stderr, "hunter2")
})

if (server_url !== undefined) {
  const server = server_url
  const SCHEMA = join(process.cwd(), "test", "support", "app-tables.ts")

  /** The CLI as the binary runs it (its services from the flags and `env`), in this process. */
  const run_as_binary = (env: Record<string, string>, ...args: Array<string>) =>
    Command.runWith(commands.pipe(Command.provide((root) => cli_services(root))), { version: "test" })(
      args,
    ).pipe(
      Effect.provide(NodeServices.layer),
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env))),
    )
  const failure_of = (effect: Effect.Effect<unknown, unknown>) =>
    Effect.map(Effect.flip(effect), (error) => (error as Error).message)

  it.effect(
    "on the app's own table (--schema): lists and revokes by label, cleans up with progress on a terminal, refuses the standalone migrate, names drizzle-kit for a missing table",
    () =>
      Effect.gen(function* () {
        // the CLI reads the real time; the sessions below are made at it
        yield* TestClock.setTime(Date.now())
        const env = { DATABASE_URL: yield* fresh_postgres_database(server) }
        const on_app_table = ["--schema", SCHEMA, "--table", "user_session"]

        // before the app's migrations: the hint is the app's drizzle-kit, not the standalone migrate
        assert.match(
          yield* failure_of(run_as_binary(env, "sessions", "list", ...on_app_table)),
          /table user_session does not exist: the session table is yours, so apply your drizzle-kit migrations/,
        )
        // several tables in the module: the CLI asks which
        assert.match(
          yield* failure_of(run_as_binary(env, "sessions", "list", "--schema", SCHEMA)),
          /exports the session tables .*user_session.*: name one with --table/,
        )

        const owner = yield* Effect.gen(function* () {
          yield* apply_app_schema
          const owner = yield* (app_accounts[0] as AppAccounts).create("cli@example.com")
          const created = yield* any_key_repo.pipe(
            Effect.flatMap((repo) => Effect.forEach([1, 2, 3, 4], () => repo.create_session(owner))),
            on_table(user_session),
          )
          // two of them ended yesterday, for cleanup
          const ended = created.slice(0, 2).map(({ session }) => session.id)
          yield* db_query("backdate", (db) =>
            db.execute(sql`UPDATE user_session SET expires_at = now() - interval '1 day'
                           WHERE id IN (${sql.join(ended, sql`, `)})`),
          )
          return owner
        }).pipe(
          Effect.provide(Layer.succeed(SessionPolicy, DEFAULT_SESSION_POLICY)),
          Effect.provide(layer_postgres({ url: Redacted.make(env.DATABASE_URL), pool_size: 2 })),
        )
        const listed = yield* output_of(run_as_binary(env, "sessions", "list", ...on_app_table))
        assert.isTrue(
          listed.some((line) => line.includes("  cli@example.com  ")),
          listed.join("\n"),
        )
        assert.strictEqual(listed.at(-1), "2 live session(s)")
        const by_id = yield* output_of(
          run_as_binary(env, "sessions", "list", "--account", String(owner), ...on_app_table),
        )
        assert.strictEqual(by_id.at(-1), "2 live session(s)")

        // the standalone migrate is refused, with or without --schema, and creates nothing
        for (const args of [["migrate"], ["migrate", ...on_app_table]])
          assert.match(yield* failure_of(run_as_binary(env, ...args)), /drizzle-kit/)
        const created = yield* Effect.promise(async () => {
          const check = await admin_client(env.DATABASE_URL)
          return check
            .query<{ none: boolean }>(
              "SELECT to_regclass('account') IS NULL AND to_regclass('auth_session') IS NULL AS none",
            )
            .finally(() => check.end())
        })
        assert.isTrue(created.rows[0]?.none, "the standalone tables were created")

        // cleanup as the binary on a terminal (script gives it one): a progress line, then the summary
        const on_terminal = yield* Effect.promise(() =>
          promisify(execFile)(
            "script",
            [
              "-qec",
              [process.execPath, "--import", TSX, MAIN, "cleanup", "--batch-size", "1", ...on_app_table].join(
                " ",
              ),
              "/dev/null",
            ],
            { env: { ...process.env, ...env }, timeout: 60_000 },
          ),
        )
        assert.match(on_terminal.stdout, /\r2 rows deleted, \d+ rows\/s, 0 batches left/)
        assert.match(on_terminal.stdout, /expired sessions deleted: 2 in 3 batches/)

        assert.deepStrictEqual(
          yield* output_of(
            run_as_binary(env, "sessions", "revoke", "--account", "CLI@example.com", ...on_app_table),
          ),
          ["sessions revoked: 2"],
        )
      }).pipe(Effect.scoped),
    120_000,
  )
}

report_skipped_postgres("the admin CLI")
