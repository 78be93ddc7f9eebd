import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { readMigrationFiles } from "drizzle-orm/migrator"
import { migrate as drizzle_migrate } from "drizzle-orm/node-postgres/migrator"
import { migrate as pglite_migrate } from "drizzle-orm/pglite/migrator"
import { Effect, Layer, Option } from "effect"
import {
  type Database,
  Db,
  type Drizzle,
  generate_session_token,
  hash_session_token,
  MIGRATIONS_FOLDER,
  migrate,
  SessionRepo,
} from "../src/index.ts"
import { backends, report_skipped_postgres, standalone_repo } from "./support/backends.ts"
import { create_account } from "./support/fixtures.ts"

// The standalone schema's migrations beside an application's own drizzle-kit
// history, each case on a database of its own.

/** Drizzle's migrator of the backend, the way an app's `drizzle-kit migrate` records into drizzle.__drizzle_migrations. */
const app_migrate = (backend: string, db: Drizzle, folder: string) =>
  Effect.promise(() =>
    backend === "pglite"
      ? pglite_migrate(db as never, { migrationsFolder: folder })
      : drizzle_migrate(db as never, { migrationsFolder: folder }),
  )

/** An app's migration folder with one migration creating `table`, dated `when` (ms). */
const app_history = (table: string, when: number): string => {
  const folder = mkdtempSync(join(tmpdir(), "esr-app-migrations-"))
  mkdirSync(join(folder, "meta"))
  writeFileSync(join(folder, "0000_app.sql"), `CREATE TABLE "${table}" (id integer PRIMARY KEY);`)
  writeFileSync(
    join(folder, "meta", "_journal.json"),
    JSON.stringify({
      version: "7",
      dialect: "postgresql",
      entries: [{ idx: 0, version: "7", when, tag: "0000_app", breakpoints: true }],
    }),
  )
  return folder
}

/** The shipped migrations as 0.1 shipped them: the first one only. */
const release_0_1_history = (): string => {
  const folder = mkdtempSync(join(tmpdir(), "esr-0.1-migrations-"))
  mkdirSync(join(folder, "meta"))
  const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta", "_journal.json"), "utf8"))
  const [first] = journal.entries
  copyFileSync(join(MIGRATIONS_FOLDER, `${first.tag}.sql`), join(folder, `${first.tag}.sql`))
  writeFileSync(join(folder, "meta", "_journal.json"), JSON.stringify({ ...journal, entries: [first] }))
  return folder
}

const rows = <Row>(query: ReturnType<typeof sql>) =>
  Db.use((db) => Effect.promise(() => db.execute(query))).pipe(
    Effect.map((result) => (result as unknown as { rows: Array<Row> }).rows),
  )

const table_exists = (name: string) =>
  rows<{ present: boolean }>(sql`SELECT to_regclass(${name}) IS NOT NULL AS present`).pipe(
    Effect.map((found) => found[0]?.present === true),
  )

const shared_hashes = rows<{ hash: string }>(sql`SELECT hash FROM drizzle.__drizzle_migrations`).pipe(
  Effect.map((found) => found.map((row) => row.hash)),
)

for (const backend of backends) {
  describe(`standalone migrations beside an app's history on ${backend.name}`, () => {
    const on_fresh_database = <A, E>(effect: Effect.Effect<A, E, Db | SessionRepo | Database>) =>
      effect.pipe(Effect.provide(standalone_repo.pipe(Layer.provideMerge(backend.database()))), Effect.scoped)

    it.live("the app migrated first, with a newer migration: migrate still creates the tables", () =>
      on_fresh_database(
        Effect.gen(function* () {
          const db = yield* Db
          const folder = app_history("app_first", Date.now() + 86_400_000)
          yield* app_migrate(backend.name, db, folder)
          rmSync(folder, { recursive: true })
          yield* migrate
          assert.isTrue(yield* table_exists("auth_session"))
          assert.isTrue(yield* table_exists("account"))
          const repo = yield* SessionRepo
          const owner = yield* create_account()
          const { token } = yield* repo.create_session(owner.id)
          assert.isTrue(Option.isSome(yield* repo.validate(token)))
        }),
      ),
    )

    it.live(
      "migrate first, then the app's older-dated migration still applies (its history is its own)",
      () =>
        on_fresh_database(
          Effect.gen(function* () {
            const db = yield* Db
            yield* migrate
            const folder = app_history("app_second", 1_000)
            yield* app_migrate(backend.name, db, folder)
            rmSync(folder, { recursive: true })
            assert.isTrue(yield* table_exists("app_second"))
            assert.deepStrictEqual((yield* shared_hashes).length, 1)
          }),
        ),
    )

    it.live("a database migrated by 0.1 (shared bookkeeping) upgrades in place and keeps its sessions", () =>
      on_fresh_database(
        Effect.gen(function* () {
          const db = yield* Db
          // what 0.1's migrate did: its migration, recorded in drizzle.__drizzle_migrations
          const folder = release_0_1_history()
          yield* app_migrate(backend.name, db, folder)
          rmSync(folder, { recursive: true })
          const repo = yield* SessionRepo
          const owner = yield* create_account()
          // sessions as 0.1 wrote them: one from ten days ago, and one created 100
          // days ago and kept alive by use ever since (the sliding window alone)
          const [token, old_token] = [yield* generate_session_token, yield* generate_session_token]
          yield* rows(sql`INSERT INTO auth_session (id, account_id, created_at, expires_at, last_seen_at) VALUES
            (${hash_session_token(token)}, ${owner.id}, now() - interval '10 days', now() + interval '20 days', now()),
            (${hash_session_token(old_token)}, ${owner.id}, now() - interval '100 days', now() + interval '1 hour', now())`)
          const [ours] = yield* shared_hashes
          // the app's own rows beside it: one of its migrations, and a copy of the
          // shipped file in its own history (same hash, its own date)
          yield* rows(sql`INSERT INTO drizzle.__drizzle_migrations (hash, created_at)
            VALUES ('app-migration', 1), (${ours}, 2)`)

          yield* migrate
          yield* migrate
          assert.deepStrictEqual(
            (yield* shared_hashes).sort(),
            [ours, "app-migration"].sort(),
            "0.1's row stayed in the app's history, or the app's rows went",
          )
          const own = yield* rows<{ n: number }>(
            sql`SELECT count(*)::int AS n FROM drizzle.__effect_session_repo_migrations`,
          )
          // 0.1's migration adopted, the later ones applied
          assert.strictEqual(own[0]?.n, readMigrationFiles({ migrationsFolder: MIGRATIONS_FOLDER }).length)
          assert.isTrue(Option.isSome(yield* repo.validate(token)))
          // counted from its creation, the old session is past the default 90 days
          const rejection = yield* Effect.flip(repo.authenticate(old_token))
          assert.strictEqual(rejection.reason, "absolute")
        }),
      ),
    )

    it.live("without migrations, a query fails with a DbError naming the table and the fix", () =>
      on_fresh_database(
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const error = yield* Effect.flip(repo.validate("a".repeat(43)))
          assert.strictEqual(error.reason, "undefined_table")
          assert.include(
            error.message,
            "table auth_session does not exist: run the standalone migrations (migrate, or npx effect-session-repo migrate)",
          )
        }),
      ),
    )
  })
}

report_skipped_postgres("standalone migrations")
