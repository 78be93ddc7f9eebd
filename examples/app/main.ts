// `npm start`: the example app. Embedded PGlite under DATA_DIR unless
// DATABASE_URL points at PostgreSQL.
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Option } from "effect"
import { layer_pglite, layer_postgres_from_config } from "effect-session-repo"
import { app_layer } from "./server.ts"

const main = Layer.unwrap(
  Effect.gen(function* () {
    const port = yield* Config.Port("PORT").pipe(Config.withDefault(3000))
    const database_url = yield* Config.option(Config.String("DATABASE_URL"))
    const data_dir = yield* Config.String("DATA_DIR").pipe(Config.withDefault(".data/pglite"))
    const cookie_secure = yield* Config.Boolean("COOKIE_SECURE").pipe(Config.withDefault(false))
    const admins = yield* Config.String("ADMIN_USERNAMES").pipe(Config.withDefault("admin"))
    const database = Option.isSome(database_url) ? layer_postgres_from_config : layer_pglite({ data_dir })
    yield* Effect.logInfo(
      Option.isSome(database_url)
        ? "database: PostgreSQL (DATABASE_URL)"
        : `database: embedded PGlite in ${data_dir}`,
    )
    return app_layer(database, {
      port,
      cookie_secure,
      admin_usernames: new Set(admins.split(",").map((name) => name.trim())),
      log_requests: true,
    })
  }),
)

Layer.launch(main).pipe(NodeRuntime.runMain)
