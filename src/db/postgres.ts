import { drizzle } from "drizzle-orm/node-postgres"
import { migrate } from "drizzle-orm/node-postgres/migrator"
import { Config, Context, Effect, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { watch_pool } from "../observability/pool-gauges.js"
import { type Database, database_context, type StatementObserver, statement_logger } from "./database.js"
import { DbError } from "./errors.js"
import type { Db, Drizzle } from "./handle.js"
import { libpq_sslmode_client, with_libpq_sslmode } from "./libpq-sslmode.js"
import { standalone_migrations } from "./migrations.js"
import {
  host_choosing_client,
  type PostgresUrl,
  parse_postgres_url,
  type TargetSessionAttrs,
} from "./multi-host.js"
import { Notifications } from "./notifications.js"
import { pool_transaction } from "./pool-transaction.js"
import { postgres_notifications } from "./postgres-notifications.js"
import { standby_reads_on } from "./postgres-standby.js"
import { pg_send, sending_with } from "./send.js"
import { confirming_send, STANDBY_WAIT_SECONDS, wait_for_standby } from "./standby-confirm.js"
import { StandbyReads } from "./standby-reads.js"

export interface PostgresOptions {
  /** Called with the text of every statement sent (never its parameters), e.g. to count queries. */
  readonly on_statement?: StatementObserver
  /**
   * A libpq-style connection string. `sslmode` keeps libpq's meaning:
   * `require` encrypts without checking the certificate, `verify-full` checks
   * it (with `sslrootcert` for a private CA). `prefer` and `allow` are
   * honoured too: `prefer` (what `pg_autoctl show uri` and many managed
   * services give) encrypts, unverified, when the server accepts TLS and goes
   * on in plain text when it refuses, as libpq does (the refusal remembered
   * per host: later connections start in plain text at no extra cost);
   * `allow` connects in plain text, and over TLS, unverified, to a host once
   * it has refused plain text (that first connection fails). Several hosts
   * as libpq takes them
   * (`postgres://h1:5432,h2:5432/db?target_session_attrs=read-write&connect_timeout=5`):
   * each new connection goes to the first that accepts it and matches
   * `target_session_attrs` (default `any`), the one that matched last tried
   * first; `connect_timeout` bounds each host's attempt.
   */
  readonly url: Redacted.Redacted<string>
  /** Connections in the pool; a transaction holds one until it ends. */
  readonly pool_size?: number
  /**
   * Named prepared statements (parsed once per connection). Turn off behind
   * PgBouncer in transaction pooling mode, which cannot keep them.
   */
  readonly prepare?: boolean
  /** Seconds to wait for a connection, new or from the pool (default 10). */
  readonly connect_timeout_seconds?: number
  /**
   * Where `Notifications` (the session cache's listener) connects: `url` by
   * default. LISTEN needs a connection of its own, so behind PgBouncer in
   * transaction mode give a direct URL to PostgreSQL here. LISTEN needs the
   * primary too: with several hosts and no `target_session_attrs`, the
   * listener takes `read-write` ones.
   */
  readonly listen_url?: Redacted.Redacted<string>
  /**
   * Hot standbys to validate sessions on (opt-in), as a URL like `url`; with
   * several hosts and no `target_session_attrs`, standbys are preferred. A
   * standby's answer counts only when it has replayed the primary's recent
   * WAL, and a write that ends sessions returns once the standbys applied it
   * (within about a second when they cannot say): no standby validates a
   * session after its revoke returned. Writes then commit with
   * `synchronous_commit = remote_apply`, and the role needs `pg_monitor` to
   * read `pg_stat_replication` (without it every such write waits the second).
   */
  readonly read_url?: Redacted.Redacted<string>
  /**
   * Every write returns only once a standby has flushed it (opt-in, for
   * highly available PostgreSQL): a failover cannot undo a create or a
   * revoke that returned, even while the primary runs without synchronous
   * standbys (pg_auto_failover's wait_primary, Patroni's non-strict
   * synchronous mode). A write no standby confirms within
   * `standby_wait_seconds` fails with the retryable `not_replicated`
   * (`commit_unknown`: it committed on the primary). Touches do not wait.
   * The role needs `pg_monitor` to read `pg_stat_replication`, and
   * `synchronous_commit` on (any value but `off`).
   */
  readonly writes_wait_for_standby?: boolean
  /** How long a write waits for a standby's confirmation (default 5 s). */
  readonly standby_wait_seconds?: number
}

interface Queryable {
  query(config: unknown, values?: unknown): unknown
}

/**
 * `client` with every query sent unnamed: Drizzle names prepared statements
 * when built with `.prepare(name)`, and PgBouncer in transaction mode hands
 * each transaction to any server connection, where the name is unknown.
 */
const unnamed = <Client extends Queryable>(client: Client): Client =>
  new Proxy(client, {
    get(target, key) {
      if (key === "query")
        return (config: unknown, values?: unknown) =>
          target.query(
            typeof config === "object" && config !== null && "name" in config
              ? { ...config, name: undefined }
              : config,
            values,
          )
      const value: unknown = Reflect.get(target, key, target)
      return typeof value === "function" ? value.bind(target) : value
    },
  })

/** What `layer_postgres_pool` takes besides the pool. */
export type PoolOptions = Pick<
  PostgresOptions,
  "on_statement" | "prepare" | "writes_wait_for_standby" | "standby_wait_seconds"
>

// Without a listener, an 'error' event is an uncaught exception that ends the
// process: the pool emits one when an idle connection dies, a client when its
// connection dies while checked out with no query running.
const ignore_connection_error = () => {}

/** The listeners `pool` needs (see `ignore_connection_error`): on it, and on each connection it opens from now on. */
const listen_for_errors = (pool: pg.Pool) => {
  const on_new_connection = (client: pg.PoolClient) => client.on("error", ignore_connection_error)
  pool.on("error", ignore_connection_error).on("connect", on_new_connection)
  return () => pool.off("error", ignore_connection_error).off("connect", on_new_connection)
}

/**
 * `Database` and `Db` on `pool`, whose error listeners the caller has set
 * (`listen_for_errors`): they must outlive every connection the pool holds.
 * Each connection a transaction takes gets one too (it may predate them).
 */
const database_on_pool = (
  pool: pg.Pool,
  options: PoolOptions,
  listen_config: pg.ClientConfig,
  ListenClient: typeof pg.Client = pg.Client,
  read_pool?: pg.Pool,
) =>
  Effect.gen(function* () {
    const prepare = options.prepare ?? true
    const logger = statement_logger(options.on_statement)
    const standby_wait_ms =
      options.writes_wait_for_standby === true
        ? (options.standby_wait_seconds ?? STANDBY_WAIT_SECONDS) * 1000
        : undefined
    const send_on = (client: pg.Pool | pg.PoolClient) => pg_send(client, prepare, options.on_statement)
    const handle = (client: pg.Pool | pg.PoolClient) =>
      sending_with(
        drizzle({ client: prepare ? client : unnamed(client), logger }),
        // on the pool, a write waits for a standby on the connection that made it;
        // in a transaction, the transaction waits after its COMMIT
        standby_wait_ms !== undefined && is_pool(client)
          ? confirming_send(client, send_on, standby_wait_ms)
          : send_on(client),
      )
    // One handle per connection, kept as long as the connection lives.
    const handles = new WeakMap<pg.PoolClient, Drizzle>()
    const handle_for = (client: pg.PoolClient): Drizzle => {
      let found = handles.get(client)
      if (found === undefined) {
        if (!client.listeners("error").includes(ignore_connection_error))
          client.on("error", ignore_connection_error)
        found = handle(client)
        handles.set(client, found)
      }
      return found
    }
    const on_pool = handle(pool)
    yield* Effect.acquireRelease(
      Effect.sync(() => watch_pool(pool)),
      (unwatch) => Effect.sync(unwatch),
    )
    const notifications = postgres_notifications(
      listen_config,
      (channel, payload) => pool.query("SELECT pg_notify($1, $2)", [channel, payload]),
      ListenClient,
    )
    const context = database_context(
      on_pool,
      pool_transaction(
        pool,
        handle_for,
        standby_wait_ms === undefined
          ? undefined
          : (client, signal) => wait_for_standby(client, standby_wait_ms, signal),
      ),
      standalone_migrations(on_pool, migrate),
    ).pipe(Context.add(Notifications, notifications))
    return read_pool === undefined
      ? context
      : Context.add(context, StandbyReads, yield* standby_reads_on(pool, handle(read_pool)))
  })

/**
 * The URL, if it is a PostgreSQL one; else `invalid_url`, before any
 * connection is tried. Only its scheme is named: the rest may hold a password.
 */
const postgres_url = (url: string): Effect.Effect<string, DbError> => {
  if (/^postgres(ql)?:\/\//i.test(url)) return Effect.succeed(url)
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]
  return Effect.fail(
    new DbError({
      operation: "postgres.open",
      reason: "invalid_url",
      message:
        "postgres.open failed: invalid_url: the database URL must start with postgres:// or postgresql:// " +
        `(${scheme === undefined ? "it has no scheme" : `it starts with ${scheme}:`})`,
    }),
  )
}

/** `Database`, `Db` and `Notifications` on a node-postgres pool of their own; the pool is closed with the layer. */
export const layer_postgres = (
  options: PostgresOptions,
): Layer.Layer<Database | Db | Notifications, DbError> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const url = yield* parse_postgres_url(yield* postgres_url(Redacted.value(options.url)))
      const connect_timeout_ms = (options.connect_timeout_seconds ?? 10) * 1000
      const config: pg.ClientConfig = {
        connectionString: with_libpq_sslmode(url.pg_url),
        connectionTimeoutMillis: connect_timeout_ms,
        // an idle connection to a server that vanished without a reset (a
        // failover) is noticed within about a minute; a query already
        // waiting on one waits for TCP to give up
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
        application_name: "effect-session-repo",
      }
      // sslmode prefer or allow: a Client that keeps libpq's meaning
      const Base = libpq_sslmode_client(url.sslmode)
      const pool = yield* open_pool(
        url,
        // with standby reads, a commit returns once the synchronous standbys applied it
        options.read_url === undefined
          ? config
          : { ...config, options: "-c synchronous_commit=remote_apply" },
        options.pool_size ?? 10,
        "any",
        Base,
      )
      const listen_url =
        options.listen_url === undefined
          ? url
          : yield* parse_postgres_url(yield* postgres_url(Redacted.value(options.listen_url)))
      const listen_config: pg.ClientConfig = {
        connectionString: with_libpq_sslmode(listen_url.pg_url),
        connectionTimeoutMillis: connect_timeout_ms,
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
      }
      // the pool's sslmode Client (and what it learned) when the listener connects where the pool does
      const ListenBase = listen_url === url ? Base : libpq_sslmode_client(listen_url.sslmode)
      // LISTEN works on the primary only: several hosts and no target_session_attrs mean read-write ones
      const ListenClient =
        host_choosing_client(listen_url, listen_config, "read-write", ListenBase)?.Client ?? ListenBase
      const read_url =
        options.read_url === undefined
          ? undefined
          : yield* parse_postgres_url(yield* postgres_url(Redacted.value(options.read_url)))
      const read_pool =
        read_url === undefined
          ? undefined
          : yield* open_pool(
              read_url,
              { ...config, connectionString: with_libpq_sslmode(read_url.pg_url) },
              options.pool_size ?? 10,
              "prefer-standby",
              libpq_sslmode_client(read_url.sslmode),
            )
      return yield* database_on_pool(pool, options, listen_config, ListenClient, read_pool)
    }),
  )

/**
 * A pool on `url` with `config`, closed with the layer. With several hosts
 * (or target_session_attrs) its connections go to the first host that
 * matches `default_target` unless the URL says otherwise, made by `Base` (the
 * sslmode Client, if any).
 */
const open_pool = (
  url: PostgresUrl,
  config: pg.ClientConfig,
  max: number,
  default_target: TargetSessionAttrs,
  Base: typeof pg.Client | undefined,
) =>
  Effect.gen(function* () {
    const Client = host_choosing_client(url, config, default_target, Base)?.Client ?? Base
    const pool = yield* Effect.acquireRelease(
      Effect.try({
        try: () => new pg.Pool({ ...config, max, ...(Client === undefined ? {} : { Client }) }),
        catch: (error) => DbError.from("postgres.open", error),
      }),
      (pool) => Effect.promise(() => pool.end()),
    )
    // kept until the pool is gone: closing it, or dropping its database, errors its idle connections
    listen_for_errors(pool)
    return pool
  })

/** A pg pool, by its shape: an app may load another copy of pg than this package. */
const is_pool = (value: unknown): value is pg.Pool =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as { connect?: unknown }).connect === "function" &&
  typeof (value as { totalCount?: unknown }).totalCount === "number"

/** A Drizzle node-postgres database: what `drizzle(pool)` returns, its pool as `$client`. */
interface DrizzleOnPool {
  readonly $client: unknown
}

/**
 * `Database` and `Db` on a node-postgres pool your application already has,
 * or on its Drizzle database (`drizzle(pool)`, or `drizzle(url)`, which makes
 * a pool): one pool for the app and its sessions. The layer neither opens nor
 * closes it; it adds an error listener to it (removed when the layer closes)
 * and to each connection its transactions take, so a lost connection never
 * ends the process, and its reads retry as on its own pool. Transactions are
 * still its own (`Database.transaction`), whatever Drizzle's would do.
 */
export const layer_postgres_pool = (
  pool: pg.Pool | DrizzleOnPool,
  options: PoolOptions = {},
): Layer.Layer<Database | Db | Notifications, DbError> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const client = is_pool(pool) ? pool : (pool as DrizzleOnPool).$client
      if (!is_pool(client))
        return yield* Effect.fail(
          new DbError({
            operation: "postgres.pool",
            reason: "other",
            message:
              "layer_postgres_pool needs a pg.Pool (or a Drizzle database made on one): " +
              "a single pg.Client cannot serve concurrent transactions",
          }),
        )
      // the app's pool outlives the layer: its listeners go with the layer
      yield* Effect.acquireRelease(
        Effect.sync(() => listen_for_errors(client)),
        (unlisten) => Effect.sync(unlisten),
      )
      // the listener connects as the pool does
      return yield* database_on_pool(
        client,
        options,
        (client as unknown as { options: pg.ClientConfig }).options,
      )
    }),
  )

/**
 * `layer_postgres` configured from DATABASE_URL, DATABASE_POOL_SIZE,
 * DATABASE_PREPARE, DATABASE_CONNECT_TIMEOUT (seconds), DATABASE_LISTEN_URL,
 * DATABASE_READ_URL, DATABASE_WRITES_WAIT_FOR_STANDBY and DATABASE_STANDBY_WAIT
 * (seconds).
 */
export const layer_postgres_from_config: Layer.Layer<
  Database | Db | Notifications,
  DbError | Config.ConfigError
> = Layer.unwrap(
  Effect.gen(function* () {
    const url = yield* Config.Redacted("DATABASE_URL")
    const pool_size = yield* Config.Int("DATABASE_POOL_SIZE").pipe(Config.withDefault(10))
    const prepare = yield* Config.Boolean("DATABASE_PREPARE").pipe(Config.withDefault(true))
    const connect_timeout_seconds = yield* Config.Int("DATABASE_CONNECT_TIMEOUT").pipe(Config.withDefault(10))
    const listen_url = yield* Config.option(Config.Redacted("DATABASE_LISTEN_URL"))
    const read_url = yield* Config.option(Config.Redacted("DATABASE_READ_URL"))
    const writes_wait_for_standby = yield* Config.Boolean("DATABASE_WRITES_WAIT_FOR_STANDBY").pipe(
      Config.withDefault(false),
    )
    const standby_wait_seconds = yield* Config.Number("DATABASE_STANDBY_WAIT").pipe(
      Config.withDefault(STANDBY_WAIT_SECONDS),
    )
    return layer_postgres({
      url,
      pool_size,
      prepare,
      connect_timeout_seconds,
      ...(Option.isSome(listen_url) ? { listen_url: listen_url.value } : {}),
      ...(Option.isSome(read_url) ? { read_url: read_url.value } : {}),
      writes_wait_for_standby,
      standby_wait_seconds,
    })
  }),
)
