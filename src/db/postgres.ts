import { drizzle } from "drizzle-orm/postgres-js"
import { migrate } from "drizzle-orm/postgres-js/migrator"
import { Config, Effect, Layer, Redacted } from "effect"
import postgres from "postgres"
import { type Database, database_context, type StatementObserver, statement_logger } from "./database.ts"
import type { DbError } from "./errors.ts"
import type { Db } from "./handle.ts"
import { MIGRATIONS_FOLDER } from "./migrations.ts"
import { make_guarded_socket } from "./pg-socket.ts"

export interface PostgresOptions {
  /** Called with the text of every statement sent (never its parameters), e.g. to count queries. */
  readonly on_statement?: StatementObserver
  readonly url: Redacted.Redacted<string>
  /** Connections in the pool; a transaction holds one until it ends. */
  readonly pool_size?: number
  /**
   * Named prepared statements (one round trip per query instead of two). Turn
   * off behind PgBouncer in transaction pooling mode.
   */
  readonly prepare?: boolean
  /** Seconds a new connection may take to be ready (default 10; postgres.js would wait 30). */
  readonly connect_timeout_seconds?: number
}

/** Seconds before reconnect attempt `retries`: 50 ms, doubling, at most 0.5 s, with jitter. */
const reconnect_delay_seconds = (retries: number): number =>
  Math.min(0.05 * 2 ** retries, 0.5) * (0.5 + Math.random() / 2)

/** `Database` and `Db` on a postgres.js pool; the pool is closed with the layer. */
export const layer_postgres = (options: PostgresOptions): Layer.Layer<Database | Db, DbError> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const pool_size = options.pool_size ?? 10
      const client = yield* Effect.acquireRelease(
        Effect.sync(() =>
          postgres(Redacted.value(options.url), {
            max: pool_size,
            prepare: options.prepare ?? true,
            connect_timeout: options.connect_timeout_seconds ?? 10,
            // postgres.js waits up to 20 s between reconnects after repeated
            // failures (3^n / 100 s): after a server restart under load that
            // left the pool idle for 15 s. Retry within half a second instead.
            backoff: reconnect_delay_seconds,
            onnotice: () => {},
            connection: { application_name: "effect-session-repo" },
            // The array-type lookup on each new connection is a floating
            // promise in postgres.js: a connection killed during it raises an
            // unhandled rejection. Drizzle parses array columns itself.
            fetch_types: false,
            // documented by postgres.js but missing from its types
            ...({ socket: make_guarded_socket() } as object),
          }),
        ),
        (client) => Effect.promise(() => client.end({ timeout: 5 })),
      )
      const pool = drizzle({ client, logger: statement_logger(options.on_statement) })
      return database_context(pool, () => migrate(pool, { migrationsFolder: MIGRATIONS_FOLDER }))
    }),
  )

/**
 * `layer_postgres` configured from DATABASE_URL, DATABASE_POOL_SIZE,
 * DATABASE_PREPARE and DATABASE_CONNECT_TIMEOUT (seconds).
 */
export const layer_postgres_from_config: Layer.Layer<Database | Db, DbError | Config.ConfigError> =
  Layer.unwrap(
    Effect.gen(function* () {
      const url = yield* Config.Redacted("DATABASE_URL")
      const pool_size = yield* Config.Int("DATABASE_POOL_SIZE").pipe(Config.withDefault(10))
      const prepare = yield* Config.Boolean("DATABASE_PREPARE").pipe(Config.withDefault(true))
      const connect_timeout_seconds = yield* Config.Int("DATABASE_CONNECT_TIMEOUT").pipe(
        Config.withDefault(10),
      )
      return layer_postgres({ url, pool_size, prepare, connect_timeout_seconds })
    }),
  )
