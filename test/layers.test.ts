import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs"
import { createServer, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { drizzle } from "drizzle-orm/node-postgres"
import { ConfigProvider, Effect, Layer, Option } from "effect"
import pg from "pg"
import {
  account,
  layer_postgres_from_config,
  layer_postgres_pool,
  migrate,
  SessionRepo,
} from "../src/index.ts"
import { layer_pglite } from "../src/pglite.ts"
import {
  fresh_postgres_database,
  report_skipped_postgres,
  scoped_pool,
  server_url,
  standalone_repo,
} from "./support/backends.ts"
import { create_account, on_db } from "./support/fixtures.ts"

describe("layer_pglite", () => {
  it.live(
    "gives Drizzle date and time values as text, microseconds included, as Drizzle's own PGlite setup does",
    () =>
      Effect.gen(function* () {
        const rows = yield* on_db((db) =>
          db.execute(
            sql`SELECT '2026-01-02 03:04:05.123456+00'::timestamptz AS at, '1 day'::interval AS span`,
          ),
        ).pipe(Effect.provide(layer_pglite()))
        const row = (rows as unknown as { rows: Array<{ at: unknown; span: unknown }> }).rows[0]
        assert.strictEqual(row?.at, "2026-01-02 03:04:05.123456+00")
        assert.strictEqual(row?.span, "1 day")
      }),
  )

  it.live("persists to data_dir across restarts", () =>
    Effect.gen(function* () {
      const data_dir = mkdtempSync(join(tmpdir(), "esr-pglite-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(data_dir, { recursive: true, force: true })))
      const database = layer_pglite({ data_dir })
      // each `provide` opens the database and closes it when done
      yield* Effect.andThen(migrate, create_account()).pipe(Effect.provide(database))
      const accounts = yield* on_db((db) => db.$count(account)).pipe(Effect.provide(database))
      assert.strictEqual(accounts, 1)
    }),
  )

  /** Paths under `dir` (itself included) that anyone but their owner may read, write or enter. */
  const open_to_others = (dir: string) =>
    [dir, ...readdirSync(dir, { recursive: true, encoding: "utf8" }).map((name) => join(dir, name))].filter(
      (path) => (statSync(path).mode & 0o077) !== 0,
    )

  it.live("its data_dir is its owner's alone: folders 0700, files 0600, even under umask 0", () =>
    Effect.gen(function* () {
      const parent = mkdtempSync(join(tmpdir(), "esr-pglite-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(parent, { recursive: true, force: true })))
      const umask = process.umask(0)
      yield* Effect.addFinalizer(() => Effect.sync(() => process.umask(umask)))
      const fresh = join(parent, "new", "pglite")
      yield* Effect.gen(function* () {
        yield* Effect.andThen(migrate, create_account())
        // while it runs
        assert.deepStrictEqual(open_to_others(fresh), [])
      }).pipe(Effect.provide(layer_pglite({ data_dir: fresh })))
      // and the files written until it closed
      assert.deepStrictEqual(open_to_others(fresh), [])
      assert.strictEqual(statSync(fresh).mode & 0o777, 0o700)
      // a folder that already existed, open to all, is restricted too
      const existing = join(parent, "existing")
      mkdirSync(existing)
      chmodSync(existing, 0o777)
      yield* migrate.pipe(Effect.provide(layer_pglite({ data_dir: existing })))
      assert.deepStrictEqual(open_to_others(existing), [])
    }),
  )
})

describe("layer_postgres_from_config without a server", () => {
  it.live("DATABASE_CONNECT_TIMEOUT bounds the wait for a server that never answers", () =>
    Effect.gen(function* () {
      // accepts connections and never says a word
      const sockets: Array<Socket> = []
      const silent = createServer((socket) => void sockets.push(socket))
      const port = yield* Effect.acquireRelease(
        Effect.callback<number>((resume) => {
          silent.listen(0, "127.0.0.1", () =>
            resume(Effect.succeed((silent.address() as { port: number }).port)),
          )
        }),
        () =>
          Effect.sync(() => {
            for (const socket of sockets) socket.destroy()
            silent.close()
          }),
      )
      const config = ConfigProvider.fromEnvRecord({
        DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
        DATABASE_CONNECT_TIMEOUT: "1",
      })
      const began = Date.now()
      const error = yield* Effect.flip(
        migrate.pipe(
          Effect.provide(layer_postgres_from_config),
          Effect.provide(ConfigProvider.layer(config)),
        ),
      )
      const waited_ms = Date.now() - began
      assert.strictEqual(error._tag, "DbError")
      assert.isTrue(error._tag === "DbError" && error.is_retryable)
      // the driver's own default would wait 30 s, the layer's 10 s
      assert.isBelow(waited_ms, 5000)
    }),
  )
})

if (server_url !== undefined) {
  const url = server_url
  /** Named prepared statements on the pool's only connection. */
  const prepared_statements = on_db((db) =>
    db.execute(sql`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name <> ''`),
  ).pipe(Effect.map((result) => Number((result as { rows: Array<{ n: number }> }).rows[0]?.n)))

  /** Migrates, then creates a session and validates it: the repo works on this database. */
  const migrated_repo_works = Effect.gen(function* () {
    yield* migrate
    const repo = yield* SessionRepo
    const owner = yield* create_account()
    const { token } = yield* repo.create_session(owner.id)
    assert.isTrue(Option.isSome(yield* repo.validate(token)))
  })

  describe("layer_postgres_from_config", () => {
    for (const prepare of ["true", "false"]) {
      it.live(`reads DATABASE_URL, DATABASE_POOL_SIZE and DATABASE_PREPARE=${prepare}`, () =>
        Effect.gen(function* () {
          const database_url = yield* fresh_postgres_database(url)
          const config = ConfigProvider.fromEnvRecord({
            DATABASE_URL: database_url,
            DATABASE_POOL_SIZE: "1",
            DATABASE_PREPARE: prepare,
          })
          const services = standalone_repo.pipe(
            Layer.provideMerge(layer_postgres_from_config),
            Layer.provide(ConfigProvider.layer(config)),
          )
          yield* Effect.gen(function* () {
            yield* migrated_repo_works
            const named = yield* prepared_statements
            if (prepare === "true") assert.isAbove(named, 0)
            else assert.strictEqual(named, 0)
          }).pipe(Effect.provide(services))
        }),
      )
    }

    it.live("a missing DATABASE_URL is a ConfigError", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Layer.build(layer_postgres_from_config).pipe(
            Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({}))),
          ),
        )
        assert.strictEqual(error._tag, "ConfigError")
      }),
    )
  })

  describe("layer_postgres_pool", () => {
    it.live("runs the repo on the app's pool (or its Drizzle database), and leaves the pool open", () =>
      Effect.gen(function* () {
        const database_url = yield* fresh_postgres_database(url)
        const pool = yield* scoped_pool(new pg.Pool({ connectionString: database_url, max: 2 }))
        for (const handed of [pool, drizzle(pool)]) {
          yield* Effect.gen(function* () {
            yield* migrated_repo_works
            // its listeners are there while the layer is
            assert.strictEqual(pool.listenerCount("error"), 1)
          }).pipe(Effect.provide(standalone_repo.pipe(Layer.provideMerge(layer_postgres_pool(handed)))))
          // closed: the pool is the app's still, as it was
          assert.strictEqual(pool.listenerCount("error"), 0)
          assert.strictEqual(pool.listenerCount("connect"), 0)
          const { rows } = yield* Effect.promise(() =>
            pool.query("SELECT count(*)::int AS n FROM auth_session"),
          )
          assert.isAbove(rows[0].n, 0)
        }
      }),
    )

    it.live("a single pg.Client is a DbError that says a pool is needed", () =>
      Effect.gen(function* () {
        const client = new pg.Client({ connectionString: url })
        const error = yield* Effect.flip(Layer.build(layer_postgres_pool(drizzle(client))))
        assert.strictEqual(error._tag, "DbError")
        assert.include(error.message, "needs a pg.Pool")
      }),
    )
  })
}

report_skipped_postgres("layer_postgres_from_config")
