import { Config, Effect, Layer, Option } from "effect"
import type { Database } from "./database.js"
import { DbError } from "./errors.js"
import type { Db } from "./handle.js"
import { layer_postgres_from_config } from "./postgres.js"

/** Where the embedded database lives when DATA_DIR does not say. */
export const DEFAULT_DATA_DIR = ".data/pglite"

/**
 * PostgreSQL when DATABASE_URL is set (see `layer_postgres_from_config`),
 * otherwise embedded PGlite persisted under DATA_DIR (default `.data/pglite`).
 * PGlite, an optional peer dependency, is loaded only when chosen.
 */
export const layer_database_from_config: Layer.Layer<Database | Db, DbError | Config.ConfigError> =
  Layer.unwrap(
    Effect.gen(function* () {
      const database_url = yield* Config.option(Config.String("DATABASE_URL"))
      if (Option.isSome(database_url)) {
        yield* Effect.logDebug("database: PostgreSQL (DATABASE_URL)")
        return layer_postgres_from_config
      }
      const data_dir = yield* Config.String("DATA_DIR").pipe(Config.withDefault(DEFAULT_DATA_DIR))
      yield* Effect.logDebug(`database: embedded PGlite in ${data_dir}`)
      const { layer_pglite } = yield* Effect.tryPromise({
        try: () => import("./pglite.js"),
        catch: (error) => DbError.from("pglite.load", error),
      })
      return layer_pglite({ data_dir })
    }),
  )
