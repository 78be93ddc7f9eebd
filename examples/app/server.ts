import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Effect, Layer } from "effect"
import { HttpIncomingMessage, HttpRouter } from "effect/http"
import { type Database, type Db, migrate, SessionRepo } from "effect-session-repo"
import { SessionCookie } from "effect-session-repo/http"
import { TrustedProxyHops } from "./client-address.ts"
import { AdminUsernames, prepare_schema, Routes } from "./routes.ts"

export interface AppOptions {
  /** 0 picks a free port. */
  readonly port: number
  /** The cookie's Secure flag: off only for plain-HTTP localhost. */
  readonly cookie_secure: boolean
  readonly admin_usernames: ReadonlySet<string>
  /** Reverse proxies in front of the app whose X-Forwarded-For is believed; 0 (the default) for none. */
  readonly trusted_proxy_hops?: number
  readonly log_requests?: boolean
}

/**
 * The example app served over HTTP on `database`: migrations and the app's own
 * table first, then the routes. Also exposes `HttpServer` (its address) and
 * the database services.
 */
export const app_layer = <E, R>(database: Layer.Layer<Database | Db, E, R>, options: AppOptions) => {
  const ready = Layer.effectDiscard(Effect.andThen(migrate, prepare_schema)).pipe(
    Layer.provideMerge(database),
  )
  const sessions = SessionRepo.layer.pipe(Layer.provideMerge(ready))
  return HttpRouter.serve(Routes, { disableLogger: options.log_requests !== true }).pipe(
    // every body this API accepts is a few hundred bytes
    Layer.provide(Layer.succeed(HttpIncomingMessage.MaxBodySize, ByteSize.fromInputUnsafe("16 KiB"))),
    Layer.provide(Layer.succeed(AdminUsernames, options.admin_usernames)),
    Layer.provide(Layer.succeed(TrustedProxyHops, options.trusted_proxy_hops ?? 0)),
    Layer.provide(Layer.succeed(SessionCookie, { name: "session", secure: options.cookie_secure })),
    Layer.provideMerge(sessions),
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: options.port })),
  )
}
