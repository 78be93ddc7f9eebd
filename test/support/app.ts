import { eq } from "drizzle-orm"
import { Effect, Layer, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { credential, hash_password } from "../../examples/app/credentials.ts"
import { type AppOptions, app_layer } from "../../examples/app/server.ts"
import { auth_session, type Database, type Db, layer_postgres } from "../../src/index.ts"
import { layer_pglite } from "../../src/pglite.ts"
import { type Backend, fresh_postgres_database, server_url } from "./backends.ts"
import { on_db } from "./fixtures.ts"

// a free port and the app's defaults (a Secure __Host- cookie, local origins); "admin" may see every session
const TEST_OPTIONS: AppOptions = { port: 0, admin_usernames: new Set(["admin"]) }

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
  return app_layer(database, { ...TEST_OPTIONS, admin_usernames: new Set(admin_usernames) }).pipe(Layer.orDie)
}

/**
 * Another instance of the example app, with other options, on the database of
 * the enclosing `example_app` (nest it with `it.layer`; its `base_url` is the
 * new instance's). Fresh: it shares no router or service with the first one.
 */
export const another_instance = (options: Partial<AppOptions>) =>
  Layer.fresh(
    app_layer(Layer.effectContext(Effect.context<Database | Db>()), { ...TEST_OPTIONS, ...options }),
  ).pipe(Layer.orDie)

/** The app's base URL, e.g. http://127.0.0.1:40123 */
export const base_url = HttpServer.HttpServer.useSync((server) => {
  const address = server.address as { readonly port?: number }
  return `http://127.0.0.1:${address.port}`
})

export interface Reply {
  readonly status: number
  readonly body: Record<string, unknown>
  /** The Set-Cookie header of the session cookie, if any. */
  readonly set_cookie: string | undefined
  /** The Set-Cookie header of the device cookie, if any. */
  readonly set_device_cookie: string | undefined
}

const DEVICE_COOKIE = /^(__Host-)?device=/

/**
 * A browser-like client: keeps the session cookie and the device cookie it is
 * given (`cookie`, `device_cookie`: "name=value"), sends them back.
 */
export const make_client = (base: string) => {
  let cookie: string | undefined
  let device_cookie: string | undefined
  const call = (
    method: string,
    path: string,
    body?: unknown,
    raw_body?: string,
    extra_headers: Record<string, string> = {},
  ) =>
    Effect.promise(async (): Promise<Reply> => {
      const headers: Record<string, string> = {}
      const cookies = [cookie, device_cookie].filter((pair) => pair !== undefined)
      if (cookies.length > 0) headers.cookie = cookies.join("; ")
      if (body !== undefined || raw_body !== undefined) headers["content-type"] = "application/json"
      Object.assign(headers, extra_headers)
      const payload = raw_body ?? (body === undefined ? undefined : JSON.stringify(body))
      const response = await fetch(base + path, {
        method,
        headers,
        ...(payload === undefined ? {} : { body: payload }),
      })
      const set_cookies = response.headers.getSetCookie()
      const set_cookie = set_cookies.find((header) => !DEVICE_COOKIE.test(header))
      const set_device_cookie = set_cookies.find((header) => DEVICE_COOKIE.test(header))
      const kept = (header: string) => (/Max-Age=0/i.test(header) ? undefined : header.split(";")[0])
      if (set_cookie !== undefined) cookie = kept(set_cookie)
      if (set_device_cookie !== undefined) device_cookie = kept(set_device_cookie)
      const text = await response.text()
      return {
        status: response.status,
        body: text === "" ? {} : JSON.parse(text),
        set_cookie,
        set_device_cookie,
      }
    })
  return {
    call,
    get cookie() {
      return cookie
    },
    set cookie(value: string | undefined) {
      cookie = value
    },
    get device_cookie() {
      return device_cookie
    },
    set device_cookie(value: string | undefined) {
      device_cookie = value
    },
  }
}

/** User-Agent headers of other devices, with what the app shows of them. */
export const DEVICES = {
  firefox_on_windows: {
    user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    browser: "Firefox 128",
    os: "Windows 10",
  },
  safari_on_iphone: {
    user_agent:
      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    browser: "Safari 17",
    os: "iOS 17.5",
  },
} as const

/** Makes the session's last proof of the password `minutes` old (the app asks again after 10). */
export const password_proven_ago = (session_id: string, minutes: number) =>
  on_db((db) =>
    db
      .update(auth_session)
      .set({ authenticated_at: new Date(Date.now() - minutes * 60_000) })
      .where(eq(auth_session.id, session_id)),
  )

/** Gives the account `password`, whatever today's rules say of it: a password chosen before them. */
export const password_set_before_the_rules = (account_id: string, password: string) =>
  Effect.flatMap(hash_password(password), (password_hash) =>
    on_db((db) => db.update(credential).set({ password_hash }).where(eq(credential.account_id, account_id))),
  )
