// `npm start`: the example app. Embedded PGlite under DATA_DIR (default
// .data/pglite) unless DATABASE_URL points at PostgreSQL.
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Option } from "effect"
import { layer_database_from_config } from "effect-session-repo/pglite"
import { ProxyHops } from "./client-address.ts"
import { app_layer } from "./server.ts"

const main = Layer.unwrap(
  Effect.gen(function* () {
    const port = yield* Config.Port("PORT").pipe(Config.withDefault(3000))
    // this machine only, unless told otherwise
    const host = yield* Config.String("HOST").pipe(Config.withDefault("127.0.0.1"))
    // where browsers reach the app (scheme, host, port): cross-origin requests are refused
    const app_origin = yield* Config.option(Config.String("APP_ORIGIN"))
    // browsers take Secure cookies from http://localhost too: off only for plain HTTP elsewhere
    const cookie_secure = yield* Config.Boolean("COOKIE_SECURE").pipe(Config.withDefault(true))
    // no default admin: sign-up is open, so a default name would go to whoever registers it first
    const admins = yield* Config.String("ADMIN_USERNAMES").pipe(Config.withDefault(""))
    // behind N reverse proxies: TRUSTED_PROXY_HOPS=N, or every session records the proxy's address
    const trusted_proxy_hops = yield* Config.schema(ProxyHops, "TRUSTED_PROXY_HOPS").pipe(
      Config.withDefault(0),
    )
    if (!cookie_secure) {
      yield* Effect.logWarning(
        "COOKIE_SECURE is off: the session cookie can travel over plain HTTP; never do this in production",
      )
    }
    const on_postgres = Option.isSome(yield* Config.option(Config.String("DATABASE_URL")))
    yield* Effect.logInfo(
      on_postgres ? "database: PostgreSQL (DATABASE_URL)" : "database: embedded PGlite (DATA_DIR)",
    )
    return app_layer(layer_database_from_config, {
      port,
      host,
      cookie_secure,
      ...(Option.isSome(app_origin) ? { app_origin: app_origin.value } : {}),
      admin_usernames: new Set(
        admins
          .split(",")
          .map((name) => name.trim())
          .filter((name) => name !== ""),
      ),
      trusted_proxy_hops,
      log_requests: true,
    })
  }),
)

Layer.launch(main).pipe(NodeRuntime.runMain)
