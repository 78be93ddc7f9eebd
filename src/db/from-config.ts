import { Config, Effect, Layer, Option } from "effect"
import type { Database } from "./database.js"
import type { DbError } from "./errors.js"
import type { Db } from "./handle.js"
import { layer_pglite } from "./pglite.js"
import { layer_postgres_from_config } from "./postgres.js"

/**
 * PostgreSQL when DATABASE_URL is set (see `layer_postgres_from_config`),
 * otherwise embedded PGlite persisted under DATA_DIR (default `.data/pglite`).
 */
export const layer_database_from_config: Layer.Layer<Database | Db, DbError | Config.ConfigError> =
  Layer.unwrap(
    Effect.gen(function* () {
      const database_url = yield* Config.option(Config.String("DATABASE_URL"))
      if (Option.isSome(database_url)) {
        yield* Effect.logDebug("database: PostgreSQL (DATABASE_URL)")
        return layer_postgres_from_config
      }
      const data_dir = yield* Config.String("DATA_DIR").pipe(Config.withDefault(".data/pglite"))
      yield* Effect.logDebug(`database: embedded PGlite in ${data_dir}`)
      return layer_pglite({ data_dir })
    }),
  )
