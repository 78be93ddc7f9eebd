import { execFile } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { promisify } from "node:util"
import { NodeServices } from "@effect/platform-node"
import { assert, layer, it as plain_it } from "@effect/vitest"
import { Effect } from "effect"
import { Command } from "effect/cli"
import { TestClock, TestConsole } from "effect/testing"
import { cli } from "../src/bin/cli.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { create_account, insert_session, session_rows, truncate_all } from "./support/fixtures.ts"

const SECOND = 1000
const run_cli = (...args: Array<string>) =>
  Command.runWith(cli, { version: "test" })(args).pipe(Effect.provide(NodeServices.layer))

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
        assert.deepStrictEqual(lines, [
          "batch: 2 deleted (2 so far)",
          "batch: 2 deleted (4 so far)",
          "batch: 1 deleted (5 so far)",
          "expired sessions deleted: 5",
        ])
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
    // Effect's runMain logs the failure
    assert.include(stdout + stderr, "no database: set DATABASE_URL")
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

report_skipped_postgres("the admin CLI")
