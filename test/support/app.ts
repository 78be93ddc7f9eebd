import { Effect, Layer, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { app_layer } from "../../examples/app/server.ts"
import { type Database, type Db, layer_postgres } from "../../src/index.ts"
import { layer_pglite } from "../../src/pglite.ts"
import { type Backend, fresh_postgres_database, server_url } from "./backends.ts"

/** The example app on a free port, on a fresh database of the backend. */
export const example_app = (backend: Backend["name"], admin_usernames: ReadonlyArray<string> = ["admin"]) => {
  const database: Layer.Layer<Database | Db, unknown> =
    backend === "pglite"
      ? layer_pglite()
      : Layer.unwrap(
          Effect.map(fresh_postgres_database(server_url as string), (url) =>
            layer_postgres({ url: Redacted.make(url), pool_size: 10 }),
          ),
        )
  return app_layer(database, {
    port: 0,
    cookie_secure: false,
    admin_usernames: new Set(admin_usernames),
  }).pipe(Layer.orDie)
}

/** The app's base URL, e.g. http://127.0.0.1:40123 */
export const base_url = HttpServer.HttpServer.useSync((server) => {
  const address = server.address as { readonly port?: number }
  return `http://127.0.0.1:${address.port}`
})

export interface Reply {
  readonly status: number
  readonly body: Record<string, unknown>
  /** The Set-Cookie header, if any. */
  readonly set_cookie: string | undefined
}

/** A browser-like client: keeps the session cookie it is given, sends it back. */
export const make_client = (base: string) => {
  let cookie: string | undefined
  const call = (
    method: string,
    path: string,
    body?: unknown,
    raw_body?: string,
    extra_headers: Record<string, string> = {},
  ) =>
    Effect.promise(async (): Promise<Reply> => {
      const headers: Record<string, string> = {}
      if (cookie !== undefined) headers.cookie = cookie
      if (body !== undefined || raw_body !== undefined) headers["content-type"] = "application/json"
      Object.assign(headers, extra_headers)
      const payload = raw_body ?? (body === undefined ? undefined : JSON.stringify(body))
      const response = await fetch(base + path, {
        method,
        headers,
        ...(payload === undefined ? {} : { body: payload }),
      })
      const set_cookie = response.headers.get("set-cookie") ?? undefined
      if (set_cookie !== undefined) {
        const [pair] = set_cookie.split(";")
        cookie = /Max-Age=0/i.test(set_cookie) ? undefined : pair
      }
      const text = await response.text()
      return { status: response.status, body: text === "" ? {} : JSON.parse(text), set_cookie }
    })
  return {
    call,
    get cookie() {
      return cookie
    },
    set cookie(value: string | undefined) {
      cookie = value
    },
  }
}
