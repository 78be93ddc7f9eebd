import { execFileSync } from "node:child_process"
import { chmodSync, chownSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Context, Effect, Layer, Redacted } from "effect"
import { libpq_sslmode_client } from "../src/db/libpq-sslmode.ts"
import { Database, Db, type DbError, layer_postgres, Notifications } from "../src/index.ts"
import { admin_client } from "./support/admin.ts"
import { fresh_postgres_database, server_url } from "./support/backends.ts"
import { server_has_tls } from "./support/fault-service.ts"
import { scratch_server, scratch_server_available } from "./support/scratch-server.ts"
import { tcp_proxy } from "./support/tcp-proxy.ts"

// libpq's sslmode=prefer (what pg_autoctl show uri ends in) and allow on
// node-postgres, which reads both as "TLS or fail": prefer encrypts when the
// server accepts TLS and goes on in plain text when it refuses; allow starts
// in plain text. Against a server without TLS (the shared one when its ssl is
// off, else a scratch one) and a scratch server with TLS (a self-signed
// certificate made here: the shared server's TLS is .ci/postgres-tls.sh's,
// which reloads it, so it is only checked when it is already on).

/** `url` with `query` added. */
const with_query = (url: string, query: string) => `${url}${url.includes("?") ? "&" : "?"}${query}`

/** `url` (one host) with its host part replaced by `host_part`, its user by `user`, and `query` added. */
const with_hosts = (url: string, host_part: string, query: string, user?: string) => {
  const parsed = new URL(url)
  const name = user ?? parsed.username
  return `postgres://${name === "" ? "" : `${name}@`}${host_part}${parsed.pathname}?${query}`
}

const host_port = (url: string) => {
  const parsed = new URL(url)
  return { host: parsed.hostname, port: Number(parsed.port || 5432) }
}

/** Whether the connection the statement runs on is encrypted. */
const CONNECTION_SSL = sql`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`

/** The rows of `query` on `Db`. */
const rows_of = <Row>(query: ReturnType<typeof sql>) =>
  Effect.flatMap(Db, (db) =>
    Effect.promise(async () => (await db.execute(query)) as unknown as { rows: Array<Row> }),
  ).pipe(Effect.map((result) => result.rows))

/** Whether `Db`'s connection is encrypted. */
const ssl_of_connection = Effect.map(rows_of<{ ssl: boolean }>(CONNECTION_SSL), (rows) => rows[0]?.ssl)

/** A transaction that writes, then a read and whether its connection is encrypted, through `layer_postgres` on `url`. */
const write_and_read = (url: string) =>
  Effect.gen(function* () {
    const database = yield* Database
    yield* database.transaction(
      Effect.flatMap(Db, (tx) =>
        Effect.promise(async () => {
          await tx.execute(sql`CREATE TABLE IF NOT EXISTS sslmode_probe (n int)`)
          await tx.execute(sql`INSERT INTO sslmode_probe VALUES (1)`)
        }),
      ),
    )
    const [count] = yield* rows_of<{ n: number }>(sql`SELECT count(*)::int AS n FROM sslmode_probe`)
    return { count: count?.n ?? 0, ssl: yield* ssl_of_connection }
  }).pipe(
    Effect.provide(layer_postgres({ url: Redacted.make(url), pool_size: 2, connect_timeout_seconds: 5 })),
  )

/** The first operation's error on `url`: a transaction through `layer_postgres`. */
const transaction_error = (url: string) =>
  Effect.flip(
    Effect.flatMap(Database, (database) => database.transaction(Effect.void)).pipe(
      Effect.provide(layer_postgres({ url: Redacted.make(url), pool_size: 1, connect_timeout_seconds: 5 })),
    ),
  ) as Effect.Effect<DbError>

/** Listens on `channel` through `Notifications`, sends a notification from the pool, and waits for it. */
const listen_and_hear = (channel: string) =>
  Effect.gen(function* () {
    const arrived: Array<string> = []
    yield* (yield* Notifications).listen(channel, {
      payload: (payload) => arrived.push(payload),
      listening: () => {},
    })
    yield* Effect.flatMap(Db, (db) =>
      Effect.promise(() => db.execute(sql`SELECT pg_notify(${channel}, 'hello')`)),
    )
    const until = Date.now() + 5000
    while (!arrived.includes("hello") && Date.now() < until) yield* Effect.promise(() => sleep(20))
    return arrived.includes("hello")
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether the session cache's listener's connection is encrypted (its application_name is its own). */
const listener_ssl = Effect.map(
  rows_of<{ ssl: boolean }>(
    sql`SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
        WHERE a.application_name = 'effect-session-repo listener'`,
  ),
  (rows) => rows.map((row) => row.ssl),
)

// PostgreSQL's SSLRequest: length 8, code 80877103
describe("which sslmodes get a Client of their own", () => {
  it("prefer and allow; any other sslmode, or none, keeps pg's own Client", () => {
    assert.isDefined(libpq_sslmode_client("prefer"))
    assert.isDefined(libpq_sslmode_client("allow"))
    for (const sslmode of [undefined, "disable", "require", "verify-ca", "verify-full", "no-verify"])
      assert.isUndefined(libpq_sslmode_client(sslmode), sslmode)
  })
})

/** A server without TLS: its URL on a database of this file's own. */
class PlainServer extends Context.Service<PlainServer, { readonly url: string }>()("test/PlainServer") {}

/** A scratch server with TLS (self-signed), where user esr_tls_only may connect only over TLS. */
class TlsServer extends Context.Service<
  TlsServer,
  { readonly url: (user: string, query: string) => string }
>()("test/TlsServer") {}

const as_postgres_owned = (...paths: ReadonlyArray<string>) => {
  if (process.getuid?.() !== 0) return
  const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim())
  const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim())
  for (const path of paths) chownSync(path, uid, gid)
}

/** A self-signed certificate and its key, readable by the server; removed with the scope. */
const certificate = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = mkdtempSync(join(tmpdir(), "esr-tls-"))
    const cert = join(dir, "server.crt")
    const key = join(dir, "server.key")
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"].concat([
        "-keyout",
        key,
        "-out",
        cert,
      ]),
      { stdio: "pipe" },
    )
    chmodSync(key, 0o600)
    as_postgres_owned(dir, cert, key)
    return { dir, cert, key }
  }),
  ({ dir }) => Effect.sync(() => rmSync(dir, { recursive: true, force: true })),
)

const openssl_available = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "pipe" })
    return true
  } catch {
    return false
  }
})()

if (server_url !== undefined || scratch_server_available()) {
  // the shared server when its ssl is off (as it is unless .ci/postgres-tls.sh ran), else a scratch one without TLS
  const plain_server = Layer.effect(
    PlainServer,
    Effect.gen(function* () {
      const shared = server_url
      if (shared !== undefined) {
        const admin = yield* Effect.promise(() => admin_client(shared))
        const { rows } = yield* Effect.promise(() => admin.query<{ ssl: string }>("SHOW ssl")).pipe(
          Effect.ensuring(Effect.promise(() => admin.end())),
        )
        if (rows[0]?.ssl === "off") return { url: yield* fresh_postgres_database(shared) }
      }
      const scratch = yield* scratch_server({
        settings: { ssl: "off" },
        hba: ["host all all 127.0.0.1/32 trust"],
      })
      return { url: scratch.url() }
    }),
  )

  layer(plain_server, { timeout: 60_000 })("a server without TLS", (it) => {
    it.effect("sslmode=prefer connects in plain text: a transaction and a read through layer_postgres", () =>
      Effect.gen(function* () {
        const { url } = yield* PlainServer
        const result = yield* write_and_read(with_query(url, "sslmode=prefer"))
        assert.isAtLeast(result.count, 1)
        assert.isFalse(result.ssl)
      }),
    )

    it.effect(
      "prefer: only the first connection to a host asks for TLS; later ones, the listener's too, start in plain text",
      () =>
        Effect.gen(function* () {
          const { url } = yield* PlainServer
          const proxy = yield* tcp_proxy(host_port(url))
          const through = with_hosts(url, `127.0.0.1:${proxy.port}`, "sslmode=prefer")
          yield* Effect.gen(function* () {
            const database = yield* Database
            yield* database.transaction(Effect.void)
            assert.strictEqual(proxy.connections(), 1)
            assert.strictEqual(proxy.ssl_requests(), 1)
            // the session cache's listener: a connection of its own, through the same Client
            assert.isTrue(yield* listen_and_hear("sslmode_prefer_test"))
            // two transactions at once: the pool opens its second connection
            const hold = database.transaction(
              Effect.flatMap(Db, (tx) => Effect.promise(() => tx.execute(sql`SELECT pg_sleep(0.2)`))),
            )
            yield* Effect.all([hold, hold], { concurrency: "unbounded" })
            assert.strictEqual(proxy.connections(), 3)
            assert.strictEqual(proxy.ssl_requests(), 1)
          }).pipe(Effect.provide(layer_postgres({ url: Redacted.make(through), pool_size: 2 })))
        }).pipe(Effect.scoped),
    )

    it.effect("a multi-host URL with a dead first host and sslmode=prefer connects (and its listener)", () =>
      Effect.gen(function* () {
        const { url } = yield* PlainServer
        const { host, port } = host_port(url)
        const hosts = `127.0.0.1:1,${host}:${port}`
        const result = yield* write_and_read(with_hosts(url, hosts, "sslmode=prefer"))
        assert.isAtLeast(result.count, 1)
        assert.isFalse(result.ssl)
        // the probes that choose a host (target_session_attrs) and the listener, on read-write hosts
        const attrs = with_hosts(
          url,
          hosts,
          "sslmode=prefer&target_session_attrs=read-write&connect_timeout=2",
        )
        assert.isAtLeast((yield* write_and_read(attrs)).count, 2)
        const heard = yield* listen_and_hear("sslmode_prefer_multi").pipe(
          Effect.provide(
            layer_postgres({ url: Redacted.make(with_hosts(url, hosts, "sslmode=prefer")), pool_size: 2 }),
          ),
          Effect.scoped,
        )
        assert.isTrue(heard)
      }),
    )

    it.effect("prefer: connections opened at once before any answer is known each go on in plain text", () =>
      Effect.gen(function* () {
        const { url } = yield* PlainServer
        const proxy = yield* tcp_proxy(host_port(url))
        const through = with_hosts(url, `127.0.0.1:${proxy.port}`, "sslmode=prefer")
        yield* Effect.gen(function* () {
          const database = yield* Database
          const hold = database.transaction(ssl_of_connection)
          assert.deepStrictEqual(yield* Effect.all([hold, hold, hold], { concurrency: "unbounded" }), [
            false,
            false,
            false,
          ])
          assert.strictEqual(proxy.connections(), 3)
          assert.strictEqual(proxy.ssl_requests(), 3)
        }).pipe(Effect.provide(layer_postgres({ url: Redacted.make(through), pool_size: 3 })))
      }).pipe(Effect.scoped),
    )

    it.effect("sslmode=allow connects in plain text", () =>
      Effect.gen(function* () {
        const { url } = yield* PlainServer
        const result = yield* write_and_read(with_query(url, "sslmode=allow"))
        assert.isAtLeast(result.count, 1)
        assert.isFalse(result.ssl)
      }),
    )

    it.effect("sslmode=require still fails, with the typed tls error saying to drop sslmode", () =>
      Effect.gen(function* () {
        const { url } = yield* PlainServer
        const error = yield* transaction_error(with_query(url, "sslmode=require"))
        assert.strictEqual(error._tag, "DbError")
        assert.strictEqual(error.reason, "tls", error.message)
        assert.match(error.message, /the server does not accept TLS: drop sslmode/)
      }),
    )
  })
} else {
  console.warn("[sslmode prefer] SKIPPED: neither DATABASE_URL nor PostgreSQL server binaries")
}

if (scratch_server_available() && openssl_available) {
  const tls_server = Layer.effect(
    TlsServer,
    Effect.gen(function* () {
      const { cert, key } = yield* certificate
      const scratch = yield* scratch_server({
        settings: { ssl: "on", ssl_cert_file: `'${cert}'`, ssl_key_file: `'${key}'` },
        hba: ["hostnossl all esr_tls_only 127.0.0.1/32 reject", "host all all 127.0.0.1/32 trust"],
      })
      const admin = yield* Effect.promise(() => admin_client(scratch.url()))
      yield* Effect.promise(() => admin.query("CREATE ROLE esr_tls_only LOGIN")).pipe(
        Effect.ensuring(Effect.promise(() => admin.end())),
      )
      return { url: (user: string, query: string) => scratch.url(user, query) }
    }),
  )

  layer(tls_server, { timeout: 60_000 })("a server with TLS (a scratch one, self-signed)", (it) => {
    it.effect("sslmode=prefer encrypts, the certificate unverified, the listener's connection too", () =>
      Effect.gen(function* () {
        const server = yield* TlsServer
        const result = yield* write_and_read(server.url("postgres", "sslmode=prefer"))
        assert.isAtLeast(result.count, 1)
        assert.isTrue(result.ssl)
        const listener = yield* Effect.gen(function* () {
          assert.isTrue(yield* listen_and_hear("sslmode_prefer_tls"))
          return yield* listener_ssl
        }).pipe(
          Effect.provide(
            layer_postgres({ url: Redacted.make(server.url("postgres", "sslmode=prefer")), pool_size: 2 }),
          ),
          Effect.scoped,
        )
        assert.deepStrictEqual(listener, [true])
        // a user the server takes only over TLS
        const only_tls = yield* ssl_of_connection.pipe(
          Effect.provide(
            layer_postgres({ url: Redacted.make(server.url("esr_tls_only", "sslmode=prefer")) }),
          ),
        )
        assert.isTrue(only_tls)
      }),
    )

    it.effect("a multi-host URL with a dead first host and sslmode=prefer encrypts", () =>
      Effect.gen(function* () {
        const server = yield* TlsServer
        const { host, port } = host_port(server.url("postgres", ""))
        const url = with_hosts(server.url("postgres", ""), `127.0.0.1:1,${host}:${port}`, "sslmode=prefer")
        assert.isTrue((yield* write_and_read(url)).ssl)
      }),
    )

    it.effect(
      "sslmode=allow: plain text; a server that refuses plain text fails that connection, and TLS follows",
      () =>
        Effect.gen(function* () {
          const server = yield* TlsServer
          const plain = yield* ssl_of_connection.pipe(
            Effect.provide(layer_postgres({ url: Redacted.make(server.url("postgres", "sslmode=allow")) })),
          )
          assert.isFalse(plain)
          yield* Effect.gen(function* () {
            const database = yield* Database
            const error = (yield* Effect.flip(database.transaction(Effect.void))) as DbError
            assert.strictEqual(error.reason, "tls", error.message)
            // the next connection to that host goes over TLS
            const over_tls = yield* database.transaction(ssl_of_connection)
            assert.isTrue(over_tls)
          }).pipe(
            Effect.provide(
              layer_postgres({
                url: Redacted.make(server.url("esr_tls_only", "sslmode=allow")),
                pool_size: 1,
              }),
            ),
          )
        }),
    )
  })
} else if (process.env.REQUIRE_POSTGRES === "1") {
  throw new Error(
    "REQUIRE_POSTGRES=1 but no PostgreSQL server binaries or openssl to start a scratch server with TLS",
  )
} else {
  console.warn("[sslmode prefer] TLS scratch-server cases SKIPPED: no PostgreSQL server binaries or openssl")
}

if (server_url !== undefined) {
  const root_url: string = server_url
  describe("the shared server, when it has TLS (.ci/postgres-tls.sh)", () => {
    it.effect("sslmode=prefer gives an encrypted connection", () =>
      Effect.gen(function* () {
        const admin = yield* Effect.promise(() => admin_client(root_url))
        const tls = yield* Effect.promise(() => server_has_tls(admin, "sslmode prefer")).pipe(
          Effect.ensuring(Effect.promise(() => admin.end())),
        )
        if (!tls) return
        const url = yield* fresh_postgres_database(root_url)
        const result = yield* write_and_read(with_query(url, "sslmode=prefer"))
        assert.isAtLeast(result.count, 1)
        assert.isTrue(result.ssl)
      }).pipe(Effect.scoped),
    )
  })
}
