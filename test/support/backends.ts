import { describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted, type Scope } from "effect"
import type pg from "pg"
import {
  type AnyAccountId,
  auth_session,
  type CurrentSessionTable,
  type Database,
  type Db,
  DEFAULT_SESSION_POLICY,
  layer_postgres,
  migrate,
  type Notifications,
  type SessionEvents,
  SessionPolicy,
  type SessionPolicyShape,
  SessionRepo,
  type SessionRepoShape,
  type SessionTable,
  type SessionTouches,
} from "../../src/index.ts"
import { layer_pglite } from "../../src/pglite.ts"
import { admin_client } from "./admin.ts"
import { suite_recorder } from "./recorder.ts"

/**
 * What every conformance suite runs against: a migrated, empty database, the
 * default policy and the repo on the standalone table.
 */
export type TestServices =
  | Database
  | Db
  | SessionRepo
  | SessionTouches
  | SessionEvents
  | SessionPolicy
  | CurrentSessionTable

export interface Backend {
  readonly name: "pglite" | "postgres"
  readonly layer: Layer.Layer<TestServices>
  /** A new database of this backend, empty (for suites that set up their own schema). */
  readonly database: () => Layer.Layer<Database | Db | Notifications, unknown>
  /** Transactions the backend runs at once: PGlite has one connection. */
  readonly connections: number
}

const POSTGRES_POOL_SIZE = 10

/** The text of every statement this file's database layer has sent, in order. */
export const sent_statements: Array<string> = []
const on_statement = (sql: string) => {
  sent_statements.push(sql)
}

/** The repo on the standalone table under the default policy (which it also provides); needs a database. */
export const standalone_repo = SessionRepo.layer(auth_session).pipe(
  Layer.provideMerge(Layer.succeed(SessionPolicy, DEFAULT_SESSION_POLICY)),
)

/**
 * `database` set up by `setup` (the standalone migrations by default), the
 * repo on it, and every log line and span recorded, to be checked for secrets
 * after the file.
 */
export const with_repo = (
  database: Layer.Layer<Database | Db, unknown>,
  setup: Effect.Effect<void, unknown, Database | Db> = migrate,
): Layer.Layer<TestServices> =>
  standalone_repo.pipe(
    Layer.provideMerge(Layer.effectDiscard(setup).pipe(Layer.provideMerge(database))),
    Layer.provideMerge(suite_recorder.layer),
    Layer.orDie,
  )

/**
 * `effect` with a repo of its own on `table` (any session table: tests run
 * several key types in one program, where an application registers one),
 * under the policy in the context or `policy`.
 */
export const on_table =
  (table: SessionTable, policy?: SessionPolicyShape) =>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>,
  ): Effect.Effect<
    A,
    E,
    | Exclude<R, SessionRepo | SessionTouches | SessionEvents | CurrentSessionTable>
    | Database
    | Db
    | SessionPolicy
  > => {
    // the registered type is the standalone one here; a test's table may have another key
    const repo = SessionRepo.layer(table as typeof auth_session)
    return Effect.provide(
      effect,
      policy === undefined ? repo : repo.pipe(Layer.provideMerge(Layer.succeed(SessionPolicy, policy))),
    )
  }

/** `effect` with a repo of its own on the standalone table, and the query functions, under `policy`. */
export const under_policy = (policy: SessionPolicyShape) => on_table(auth_session, policy)

/** The repo with account ids of any key type (see `on_table`). */
export const any_key_repo = SessionRepo as unknown as Effect.Effect<
  SessionRepoShape<AnyAccountId>,
  never,
  SessionRepo
>

/** A database of its own on the server, dropped when the scope closes; returns its URL. */
export const fresh_postgres_database = (server_url: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.gen(function* () {
    const name = `esr_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
    const admin = yield* Effect.promise(() => admin_client(server_url))
    yield* Effect.acquireRelease(
      Effect.promise(() => admin.query(`CREATE DATABASE ${name}`)),
      () =>
        Effect.promise(async () => {
          await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
          await admin.end()
        }),
    )
    const url = new URL(server_url)
    url.pathname = `/${name}`
    return url.toString()
  })

/**
 * A pg pool of the test's own, ended when the scope closes, and only then:
 * `pool.end()` resolves before its connections have closed, and a connection
 * still closing when `fresh_postgres_database` drops the database is
 * terminated by the server, an 'error' no listener takes.
 */
export const scoped_pool = (pool: pg.Pool): Effect.Effect<pg.Pool, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.succeed(pool), () =>
    Effect.promise(
      () =>
        new Promise<void>((closed) => {
          let open = pool.totalCount
          if (open === 0) return void pool.end().then(() => closed())
          pool.on("remove", () => {
            if (--open === 0) closed()
          })
          void pool.end()
        }),
    ),
  )

export const server_url = process.env.DATABASE_URL

/**
 * With PGBOUNCER_URL set, the suites' app connections go through PgBouncer
 * (transaction pooling, no prepared statements); databases are still created
 * and dropped on the server directly.
 */
const pooler_url = process.env.PGBOUNCER_URL
const through_pooler = (database_url: string): string => {
  if (pooler_url === undefined) return database_url
  const url = new URL(pooler_url)
  url.pathname = new URL(database_url).pathname
  return url.toString()
}
if (pooler_url !== undefined)
  console.warn(`[backends] PostgreSQL suites run through PgBouncer at ${pooler_url}`)
if (server_url === undefined && process.env.REQUIRE_POSTGRES === "1") {
  throw new Error("REQUIRE_POSTGRES=1 but DATABASE_URL is not set: the PostgreSQL suites cannot run")
}

const pglite_database = () => layer_pglite({ on_statement })

export const pglite_backend: Backend = {
  name: "pglite",
  layer: with_repo(pglite_database()),
  database: pglite_database,
  connections: 1,
}

/** Whether the PostgreSQL suites go through PgBouncer (no named statements there). */
export const through_pgbouncer = pooler_url !== undefined

const postgres_database = (url: string) => () =>
  Layer.unwrap(
    Effect.map(fresh_postgres_database(url), (database_url) =>
      layer_postgres({
        url: Redacted.make(through_pooler(database_url)),
        pool_size: POSTGRES_POOL_SIZE,
        // PgBouncer in transaction mode cannot keep named statements
        prepare: pooler_url === undefined,
        // LISTEN needs a connection of its own: past the pooler, to the server
        listen_url: Redacted.make(database_url),
        on_statement,
      }),
    ),
  )

export const postgres_backend: Backend | undefined =
  server_url === undefined
    ? undefined
    : {
        name: "postgres",
        connections: POSTGRES_POOL_SIZE,
        layer: with_repo(postgres_database(server_url)()),
        database: postgres_database(server_url),
      }

export const backends: ReadonlyArray<Backend> = postgres_backend
  ? [pglite_backend, postgres_backend]
  : [pglite_backend]

/** Marks the PostgreSQL suite as skipped, loudly, when no server is configured. */
export const report_skipped_postgres = (suite: string): void => {
  if (postgres_backend !== undefined) return
  console.warn(`[${suite}] PostgreSQL backend SKIPPED: DATABASE_URL is not set`)
  describe.skip(`${suite} on postgres`, () => {
    it("needs DATABASE_URL", () => {})
  })
}
