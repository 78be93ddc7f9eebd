// `npm start`: the example app. Embedded PGlite under DATA_DIR (default
// .data/pglite) unless DATABASE_URL points at PostgreSQL.
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Option } from "effect"
import { layer_database_from_config } from "effect-session-repo/pglite"
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
    // behind reverse proxies: their addresses, or every session records the proxy's address
    const trusted_proxies = yield* Config.String("TRUSTED_PROXIES").pipe(Config.withDefault(""))
    if (Option.isSome(yield* Config.option(Config.String("TRUSTED_PROXY_HOPS")))) {
      // a count believed any client that reached the app directly: say so rather than ignore it
      return yield* Effect.die(
        new Error("TRUSTED_PROXY_HOPS is gone: set TRUSTED_PROXIES to the proxies' addresses or CIDR ranges"),
      )
    }
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
      trusted_proxies: trusted_proxies.split(","),
      log_requests: true,
    })
  }),
)

Layer.launch(main).pipe(NodeRuntime.runMain)
