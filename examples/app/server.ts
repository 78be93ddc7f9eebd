import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Effect, Layer } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServer } from "effect/http"
import {
  auth_session,
  type Database,
  type Db,
  layer_session_policy_from_config,
  migrate,
  SessionAuditLog,
  SessionRepo,
} from "effect-session-repo"
import { SessionCookie, session_cookie } from "effect-session-repo/http"
import { ActivityRoutes } from "./activity.ts"
import { AdminUsernames, warn_about_unregistered_admins } from "./admins.ts"
import { parse_trusted_proxies, TrustedProxies } from "./client-address.ts"
import { device_cookie_layer } from "./device-cookie.ts"
import { unknown_paths_as_json } from "./http-error.ts"
import { MetricsRoute } from "./metrics.ts"
import { create_guarded_server } from "./node-server.ts"
import { PageRoutes } from "./page.ts"
import { RequestLog } from "./request-log.ts"
import { prepare_schema, Routes } from "./routes.ts"
import { AppOrigins, local_origins, normalised_origin } from "./same-origin.ts"
import { security_header_values, security_headers } from "./security-headers.ts"

export interface AppOptions {
  /** 0 picks a free port. */
  readonly port: number
  /** The interface to listen on: 127.0.0.1 unless set (0.0.0.0 or :: for every interface). */
  readonly host?: string
  /**
   * The cookie's Secure flag, on by default: browsers accept Secure cookies
   * from http://localhost too. Off only for plain HTTP on another host name;
   * the cookie is then `session`, not `__Host-session`.
   */
  readonly cookie_secure?: boolean
  /** Where browsers reach the app, e.g. https://app.example.com; its local URLs by default. */
  readonly app_origin?: string
  readonly admin_usernames: ReadonlySet<string>
  /**
   * The reverse proxies in front of the app, by address or CIDR range: their
   * X-Forwarded-For is believed, no one else's. None by default.
   */
  readonly trusted_proxies?: ReadonlyArray<string>
  readonly log_requests?: boolean
}

/** The configured origin, or the local URLs of the port the server got. */
const app_origins = (app_origin: string | undefined) =>
  Layer.effect(
    AppOrigins,
    Effect.gen(function* () {
      if (app_origin !== undefined) {
        const origin = normalised_origin(app_origin)
        if (origin === undefined)
          return yield* Effect.die(new Error(`APP_ORIGIN is not an origin: ${app_origin}`))
        return new Set([origin])
      }
      const address = (yield* HttpServer.HttpServer).address
      return local_origins("port" in address ? address.port : 0)
    }),
  )

/** `TRUSTED_PROXIES` parsed; a wrong entry stops the app at start, saying which. */
const trusted_proxies = (entries: ReadonlyArray<string>) =>
  Layer.effect(
    TrustedProxies,
    Effect.try({
      try: () => parse_trusted_proxies(entries),
      catch: (error) => new Error(`TRUSTED_PROXIES: ${(error as Error).message}`),
    }).pipe(Effect.orDie),
  )

/**
 * The example app served over HTTP on `database`. The port opens only once
 * the migrations, the app's own table and the session layer are ready, and
 * until the routes are attached the server answers 503 (./node-server.ts).
 * Also exposes `HttpServer` (its address) and the database services.
 */
export const app_layer = <E, R>(database: Layer.Layer<Database | Db, E, R>, options: AppOptions) => {
  const cookie_secure = options.cookie_secure ?? true
  const ready = Layer.effectDiscard(
    Effect.andThen(migrate, prepare_schema).pipe(
      Effect.andThen(warn_about_unregistered_admins(options.admin_usernames)),
    ),
  ).pipe(Layer.provideMerge(database))
  // the policy from SESSION_POLICY (a preset) and SESSION_* overrides; the default otherwise
  const sessions = SessionRepo.layer(auth_session).pipe(
    Layer.provide(layer_session_policy_from_config),
    Layer.provideMerge(ready),
  )
  // the audit table of auth_session, which the repo's layer names
  const audited = SessionAuditLog.layer.pipe(Layer.provideMerge(sessions))
  const app = Layer.mergeAll(
    Routes,
    ActivityRoutes,
    MetricsRoute,
    PageRoutes,
    security_headers({ hsts: cookie_secure }),
    unknown_paths_as_json,
    options.log_requests === true ? RequestLog : Layer.empty,
  )
  const served = HttpRouter.serve(app, { disableLogger: true }).pipe(
    // every body this API accepts is a few hundred bytes
    Layer.provide(Layer.succeed(HttpIncomingMessage.MaxBodySize, ByteSize.fromInputUnsafe("16 KiB"))),
    Layer.provide(
      Layer.succeed(AdminUsernames, new Set([...options.admin_usernames].map((name) => name.toLowerCase()))),
    ),
    Layer.provide(trusted_proxies(options.trusted_proxies ?? [])),
    Layer.provide(device_cookie_layer({ secure: cookie_secure })),
    Layer.provide(Layer.succeed(SessionCookie, session_cookie({ secure: cookie_secure }))),
    Layer.provide(app_origins(options.app_origin)),
    Layer.provideMerge(
      NodeHttpServer.layer(() => create_guarded_server(security_header_values({ hsts: cookie_secure })), {
        port: options.port,
        host: options.host ?? "127.0.0.1",
      }),
    ),
  )
  // built first: the server listens only when the database side is ready
  return served.pipe(Layer.provideMerge(audited))
}
