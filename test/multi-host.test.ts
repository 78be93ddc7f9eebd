import { createServer, type Socket } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Effect, Exit, Layer, Redacted } from "effect"
import pg from "pg"
import { vi } from "vitest"
import {
  host_choosing_client,
  host_name,
  type PostgresUrl,
  parse_postgres_url,
  session_matches,
} from "../src/db/multi-host.ts"
import { Database, Db, type DbError, layer_postgres, Notifications } from "../src/index.ts"
import { admin_client } from "./support/admin.ts"
import { fresh_postgres_database, report_skipped_postgres, server_url } from "./support/backends.ts"
import { tcp_proxy } from "./support/tcp-proxy.ts"

// libpq's multi-host URLs on node-postgres: the URL read as libpq reads it, and
// connections to the first host that accepts them and matches
// target_session_attrs, the last one that matched remembered until it fails.

const parsed = (url: string) => Effect.runSync(parse_postgres_url(url))
const refused = (url: string) => Effect.runSync(Effect.flip(parse_postgres_url(url)))
const hosts = (url: string) => parsed(url).hosts.map(host_name)

describe("a multi-host URL read as libpq reads it", () => {
  it("several host:port pairs in order; a pair without a port takes 5432", () => {
    assert.deepStrictEqual(hosts("postgres://u@h1:5433,h2:5434,h3/db"), ["h1:5433", "h2:5434", "h3:5432"])
    // in the host part each host has its own port: a port on the last one is not shared
    assert.deepStrictEqual(hosts("postgres://u@h1,h2:5433/db"), ["h1:5432", "h2:5433"])
    assert.deepStrictEqual(hosts("postgresql://h1,h2"), ["h1:5432", "h2:5432"])
  })

  it("IPv6 addresses in brackets, with or without a port", () => {
    const url = parsed("postgres://u@[::1]:5433,[fe80::1%25eth0],127.0.0.1:5434/db")
    assert.deepStrictEqual(url.hosts, [
      { host: "::1", port: 5433 },
      { host: "fe80::1%eth0", port: 5432 },
      { host: "127.0.0.1", port: 5434 },
    ])
    assert.deepStrictEqual(url.hosts.map(host_name), ["[::1]:5433", "[fe80::1%eth0]:5432", "127.0.0.1:5434"])
  })

  it("host= and port= in the query replace the host part's: one port for all, or one each", () => {
    assert.deepStrictEqual(hosts("postgres:///db?host=a,b&port=5433"), ["a:5433", "b:5433"])
    assert.deepStrictEqual(hosts("postgres://x/db?host=a,b&port=5433,5434"), ["a:5433", "b:5434"])
    assert.deepStrictEqual(hosts("postgres://h1:1,h2:2/db?port=5440"), ["h1:5440", "h2:5440"])
    assert.deepStrictEqual(hosts("postgres:///db?host=a,,b"), ["a:5432", "localhost:5432", "b:5432"])
    const error = refused("postgres://u:hunter2@x/db?host=a,b,c&port=1,2")
    assert.strictEqual(error.reason, "invalid_url")
    assert.match(error.message, /2 ports for 3 hosts/)
  })

  it("target_session_attrs: libpq's six values; absent is undefined (any)", () => {
    for (const attrs of ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"])
      assert.strictEqual(
        parsed(`postgres://h1,h2/db?target_session_attrs=${attrs}`).target_session_attrs,
        attrs,
      )
    assert.isUndefined(parsed("postgres://h1,h2/db").target_session_attrs)
  })

  it("an unknown target_session_attrs is invalid_url before any connection, quoting no URL nor password", () => {
    const error = refused("postgres://app:hunter2@db1:5432,db2:5432/app?target_session_attrs=read_write")
    assert.strictEqual(error._tag, "DbError")
    assert.strictEqual(error.reason, "invalid_url")
    assert.match(error.message, /target_session_attrs must be one of any, read-write, .*\(it is read_write\)/)
    for (const secret of ["hunter2", "app:", "db1"]) assert.notInclude(error.message, secret)
    // a value that is not a plain word is not quoted at all
    const odd = refused("postgres://app:hunter2@db1,db2/app?target_session_attrs=hunter2%20x")
    assert.notInclude(odd.message, "hunter2")
  })

  it("connect_timeout in seconds, each host's attempt: at least 2 s, 0 is none, a non-number refused", () => {
    assert.strictEqual(parsed("postgres://h1,h2/db?connect_timeout=5").connect_timeout_ms, 5000)
    assert.strictEqual(parsed("postgres://h1,h2/db?connect_timeout=1").connect_timeout_ms, 2000)
    assert.isUndefined(parsed("postgres://h1,h2/db?connect_timeout=0").connect_timeout_ms)
    assert.strictEqual(refused("postgres://h1,h2/db?connect_timeout=soon").reason, "invalid_url")
  })

  it("a bad port or a broken IPv6 host is invalid_url, without the password", () => {
    for (const url of [
      "postgres://u:hunter2@h1:54x2,h2/db",
      "postgres://u:hunter2@h1:99999,h2/db",
      "postgres://u:hunter2@[::1,h2/db",
      "postgres://u:hunter2@[]:5432,h2/db",
    ]) {
      const error = refused(url)
      assert.strictEqual(error.reason, "invalid_url", url)
      assert.notInclude(error.message, "hunter2")
    }
  })

  it("user, password, database and every parameter apply to each host: pg is given the URL with one stand-in host", () => {
    const url = parsed(
      "postgres://app:p%40ss@h1:5433,h2:5434/sessions?sslmode=verify-full&application_name=web",
    )
    assert.strictEqual(
      url.pg_url,
      "postgres://app:p%40ss@localhost/sessions?sslmode=verify-full&application_name=web",
    )
    const chooser = host_choosing_client(url, { connectionString: url.pg_url })
    assert.isDefined(chooser)
    const client = new (chooser as NonNullable<typeof chooser>).Client({ connectionString: url.pg_url })
    assert.strictEqual(client.user, "app")
    assert.strictEqual(client.password, "p@ss")
    assert.strictEqual(client.database, "sessions")
    assert.isOk(client.ssl)
  })

  it("a single-host URL is today's: given to pg unchanged, with pg's own Client", () => {
    for (const raw of [
      "postgres://app:hunter2@db.internal:6432/app?sslmode=require",
      "postgres://app@db/app?connect_timeout=5",
      // what node-postgres ignored, it still ignores
      "postgres://app@db/app?connect_timeout=soon&flag",
      "postgres://app@db/app?target_session_attrs=any",
    ]) {
      const url = parsed(raw)
      assert.strictEqual(url.pg_url, raw)
      assert.isUndefined(host_choosing_client(url, { connectionString: raw }))
    }
    // asking one host for a role checks it, as libpq does
    assert.isDefined(host_choosing_client(parsed("postgres://db/app?target_session_attrs=read-write"), {}))
    // a listener (read-write by default) on one host is today's too
    assert.isUndefined(host_choosing_client(parsed("postgres://db/app"), {}, "read-write"))
  })

  it("a listener on several hosts wants read-write ones, unless its URL says otherwise", () => {
    const target = (url: string) => host_choosing_client(parsed(url), {}, "read-write")?.picker.target
    assert.strictEqual(target("postgres://h1,h2/db"), "read-write")
    assert.strictEqual(target("postgres://h1,h2/db?target_session_attrs=any"), "any")
    assert.strictEqual(target("postgres://h1,h2/db?target_session_attrs=primary"), "primary")
    // the pool's default is libpq's: any
    assert.strictEqual(host_choosing_client(parsed("postgres://h1,h2/db"), {})?.picker.target, "any")
  })

  it("servers before 14 (no in_hot_standby reported) are asked with libpq's queries", async () => {
    const asked: Array<string> = []
    const answer = (value: unknown) => async (text: string) => {
      asked.push(text)
      return value
    }
    const none = new Map<string, string>()
    assert.isTrue(await session_matches("read-write", none, answer("off")))
    assert.isFalse(await session_matches("read-only", none, answer("off")))
    assert.isTrue(await session_matches("standby", none, answer(true)))
    assert.isFalse(await session_matches("primary", none, answer(true)))
    assert.deepStrictEqual(asked, [
      "SHOW transaction_read_only",
      "SHOW transaction_read_only",
      "SELECT pg_catalog.pg_is_in_recovery()",
      "SELECT pg_catalog.pg_is_in_recovery()",
    ])
    // 14 and later: what the server reported at startup, no query
    asked.length = 0
    const standby = new Map([
      ["in_hot_standby", "on"],
      ["default_transaction_read_only", "off"],
    ])
    assert.isFalse(await session_matches("read-write", standby, answer("off")))
    assert.isTrue(await session_matches("read-only", standby, answer("off")))
    assert.isTrue(await session_matches("standby", standby, answer(false)))
    assert.isTrue(await session_matches("any", none, answer(false)))
    assert.deepStrictEqual(asked, [])
  })

  it.effect(
    "layer_postgres refuses an unknown target_session_attrs with invalid_url, connecting nowhere",
    () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Layer.build(
            layer_postgres({
              url: Redacted.make(
                "postgres://app:hunter2@127.0.0.1:1,127.0.0.1:2/app?target_session_attrs=master",
              ),
            }),
          ).pipe(Effect.scoped),
        )
        assert.strictEqual(error.reason, "invalid_url")
        assert.notInclude(error.message, "hunter2")
      }),
  )
})

/** `database_url` (one host) with its host part replaced by `host_part`, and `query` added. */
const with_hosts = (database_url: string, host_part: string, query = "") => {
  const url = new URL(database_url)
  const auth = url.username === "" ? "" : `${url.username}${url.password === "" ? "" : `:${url.password}`}@`
  return `postgres://${auth}${host_part}${url.pathname}${query === "" ? "" : `?${query}`}`
}

/** The server's host:port, as the URL gives it. */
const server_host = (database_url: string) => {
  const url = new URL(database_url)
  return `${url.hostname}:${url.port === "" ? "5432" : url.port}`
}

/** A port on loopback that accepts connections and never answers (a host gone silent); closed with the scope. */
const silent_server = Effect.acquireRelease(
  Effect.callback<{ port: number; close: () => void }>((resume) => {
    const sockets = new Set<Socket>()
    const server = createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
    })
    server.listen(0, "127.0.0.1", () =>
      resume(
        Effect.succeed({
          port: (server.address() as { port: number }).port,
          close: () => {
            server.close()
            for (const socket of sockets) socket.destroy()
          },
        }),
      ),
    )
  }),
  (server) => Effect.sync(server.close),
).pipe(Effect.map((server) => server.port))

/** Waits, in real time, until `done` holds (at most 10 s). */
const wait_until = (done: () => boolean) =>
  Effect.promise(async () => {
    const until = Date.now() + 10_000
    while (!done() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
    return done()
  })

/** A pg pool whose Client chooses among `url`'s hosts, ended with the scope; and its picker. */
const choosing_pool = (url: string) =>
  Effect.gen(function* () {
    const read = yield* parse_postgres_url(url)
    const config: pg.ClientConfig = { connectionString: read.pg_url, connectionTimeoutMillis: 5000 }
    const chooser = host_choosing_client(read, config)
    if (chooser === undefined) return yield* Effect.die("a single host with any session")
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const pool = new pg.Pool({ ...config, max: 2, Client: chooser.Client })
        pool.on("error", () => {})
        return pool
      }),
      (pool) => Effect.promise(() => pool.end()),
    )
    return { pool, picker: chooser.picker, url: read satisfies PostgresUrl }
  })

/** The value of `text`'s first column, on `pool`. */
const first_value = (pool: pg.Pool, text: string) =>
  Effect.promise(async () => Object.values((await pool.query(text)).rows[0] ?? {})[0])

if (server_url === undefined) {
  report_skipped_postgres("multi-host")
} else {
  const root_url: string = server_url
  describe("multi-host URLs on a real server", () => {
    /** A transaction that writes and a read, through `layer_postgres` on `url`. */
    const write_and_read = (url: string) =>
      Effect.gen(function* () {
        const db = yield* Db
        const database = yield* Database
        yield* database.transaction(
          Effect.flatMap(Db, (tx) =>
            Effect.promise(async () => {
              await tx.execute(sql`CREATE TABLE IF NOT EXISTS multi_host_probe (n int)`)
              await tx.execute(sql`INSERT INTO multi_host_probe VALUES (1)`)
            }),
          ),
        )
        const result = yield* Effect.promise(() =>
          db.execute(sql`SELECT count(*)::int AS n FROM multi_host_probe`),
        )
        return (result as unknown as { rows: Array<{ n: number }> }).rows[0]?.n ?? 0
      }).pipe(
        Effect.provide(layer_postgres({ url: Redacted.make(url), pool_size: 2, connect_timeout_seconds: 5 })),
      )

    it.effect(
      "first host dead, second the server: a transaction and a read work through layer_postgres",
      () =>
        Effect.gen(function* () {
          const db_url = yield* fresh_postgres_database(root_url)
          const url = with_hosts(db_url, `127.0.0.1:1,${server_host(db_url)}`)
          assert.strictEqual(yield* write_and_read(url), 1)
        }).pipe(Effect.scoped),
    )

    it.effect("read-write and primary take the server (a primary) after a dead host", () =>
      Effect.gen(function* () {
        const db_url = yield* fresh_postgres_database(root_url)
        for (const attrs of ["read-write", "primary", "any", "prefer-standby"]) {
          const url = with_hosts(
            db_url,
            `127.0.0.1:1,${server_host(db_url)}`,
            `target_session_attrs=${attrs}&connect_timeout=2`,
          )
          assert.isAbove(yield* write_and_read(url), 0, attrs)
        }
      }).pipe(Effect.scoped),
    )

    it.effect(
      "standby against a primary only: the typed error naming hosts and attrs, within the timeout",
      () =>
        Effect.gen(function* () {
          const db_url = yield* fresh_postgres_database(root_url)
          const url = with_hosts(
            db_url.replace("postgres@", "postgres:hunter2@"),
            `${server_host(db_url)},localhost:${new URL(db_url).port || "5432"}`,
            "target_session_attrs=standby&connect_timeout=2",
          )
          const started = Date.now()
          const error = (yield* Effect.flip(
            Effect.flatMap(Database, (database) => database.transaction(Effect.void)).pipe(
              Effect.provide(
                layer_postgres({ url: Redacted.make(url), pool_size: 1, connect_timeout_seconds: 5 }),
              ),
            ),
          )) as DbError
          const elapsed = Date.now() - started
          assert.strictEqual(error._tag, "DbError")
          assert.strictEqual(error.reason, "connection", error.message)
          assert.isTrue(error.is_retryable)
          assert.match(error.message, /^transaction\.connect failed: connection \(code NO_HOST_MATCHED\): /)
          assert.match(error.message, /no host accepted a standby \(target_session_attrs=standby\)/)
          assert.include(error.message, `${server_host(db_url)} is a primary`)
          assert.include(error.message, "localhost:")
          assert.notInclude(error.message, "hunter2")
          assert.isBelow(elapsed, 2000)
          // one host asked to be a standby: checked on connecting, the same error
          const one = with_hosts(db_url, server_host(db_url), "target_session_attrs=standby")
          const single = (yield* Effect.flip(
            Effect.flatMap(Database, (database) => database.transaction(Effect.void)).pipe(
              Effect.provide(layer_postgres({ url: Redacted.make(one), pool_size: 1 })),
            ),
          )) as DbError
          assert.strictEqual(single.reason, "connection")
          assert.include(single.message, `${server_host(db_url)} is a primary`)
        }).pipe(Effect.scoped),
    )

    it.effect("no host up: a connection failure naming each host, not one host's refusal", () =>
      Effect.gen(function* () {
        const error = (yield* Effect.flip(
          Effect.flatMap(Database, (database) => database.transaction(Effect.void)).pipe(
            Effect.provide(
              layer_postgres({
                url: Redacted.make(
                  "postgres://postgres:hunter2@127.0.0.1:1,127.0.0.1:2/x?target_session_attrs=read-write",
                ),
                pool_size: 1,
              }),
            ),
          ),
        )) as DbError
        assert.strictEqual(error.reason, "connection")
        assert.include(
          error.message,
          "127.0.0.1:1 failed (connection_refused); 127.0.0.1:2 failed (connection_refused)",
        )
        assert.include(error.message, "target_session_attrs=read-write")
        assert.notInclude(error.message, "hunter2")
      }),
    )

    it.effect(
      "a host that never answers: connect_timeout bounds its attempt, the pool's timeout the wait",
      () =>
        Effect.gen(function* () {
          const db_url = yield* fresh_postgres_database(root_url)
          const silent = yield* silent_server
          const url = with_hosts(db_url, `127.0.0.1:${silent},${server_host(db_url)}`, "connect_timeout=2")
          const transaction = (seconds: number) =>
            Effect.flatMap(Database, (database) => database.transaction(Effect.void)).pipe(
              Effect.provide(
                layer_postgres({ url: Redacted.make(url), pool_size: 1, connect_timeout_seconds: seconds }),
              ),
            )
          // the pool gives up first: a timeout, at its own time
          let started = Date.now()
          const error = (yield* Effect.flip(transaction(1))) as DbError
          assert.strictEqual(error.reason, "timeout", error.message)
          assert.isBelow(Date.now() - started, 1900)
          // given longer: the silent host is left after 2 s, and the server taken
          started = Date.now()
          yield* transaction(5)
          const elapsed = Date.now() - started
          assert.isAtLeast(elapsed, 1900)
          assert.isBelow(elapsed, 4500)
        }).pipe(Effect.scoped),
    )

    it.effect(
      "every host refusing the user: the server's own error (authentication_failed), not a retry",
      () =>
        Effect.gen(function* () {
          const db_url = yield* fresh_postgres_database(root_url)
          const host = server_host(db_url)
          const url = with_hosts(db_url.replace("postgres@", "no_such_role_here@"), `${host},${host}`)
          const error = (yield* Effect.flip(
            Effect.flatMap(Database, (database) => database.transaction(Effect.void)).pipe(
              Effect.provide(layer_postgres({ url: Redacted.make(url), pool_size: 1 })),
            ),
          )) as DbError
          assert.strictEqual(error.reason, "authentication_failed", error.message)
        }).pipe(Effect.scoped),
    )

    it.effect(
      "the host that matched is remembered: later connections go straight to it, no probe, no query",
      () =>
        Effect.gen(function* () {
          const db_url = yield* fresh_postgres_database(root_url)
          const server = new URL(db_url)
          const proxy = yield* tcp_proxy({ host: server.hostname, port: Number(server.port || 5432) })
          const url = with_hosts(
            db_url,
            `127.0.0.1:1,127.0.0.1:${proxy.port}`,
            "target_session_attrs=read-write",
          )
          const read = yield* parse_postgres_url(url)
          const chooser = host_choosing_client(read, {
            connectionString: read.pg_url,
            connectionTimeoutMillis: 5000,
          })
          assert.isDefined(chooser)
          const { Client, picker } = chooser as NonNullable<typeof chooser>
          const query = vi.spyOn(pg.Client.prototype, "query")
          yield* Effect.addFinalizer(() => Effect.sync(() => query.mockRestore()))
          const connect = Effect.promise(async () => {
            const client = new Client({ connectionString: read.pg_url, connectionTimeoutMillis: 5000 })
            client.on("error", () => {})
            await client.connect()
            await client.end()
          })
          // the first: a probe to each host until one matches, then the connection itself
          yield* connect
          assert.strictEqual(picker.remembered, read.hosts[1])
          assert.strictEqual(proxy.connections(), 2)
          // then one connection each, to the remembered host
          yield* connect
          yield* connect
          assert.strictEqual(proxy.connections(), 4)
          // PostgreSQL 14+ reports what read-write needs at startup: no query was sent
          assert.strictEqual(query.mock.calls.length, 0)
        }).pipe(Effect.scoped),
    )

    it.effect(
      "a remembered host that stops accepting is forgotten; the next connection goes to the next host",
      () =>
        Effect.gen(function* () {
          const db_url = yield* fresh_postgres_database(root_url)
          const server = new URL(db_url)
          const proxy = yield* tcp_proxy({ host: server.hostname, port: Number(server.port || 5432) })
          const { pool, picker, url } = yield* choosing_pool(
            with_hosts(
              db_url,
              `127.0.0.1:${proxy.port},${server_host(db_url)}`,
              "target_session_attrs=read-write",
            ),
          )
          assert.strictEqual(yield* first_value(pool, "SELECT 1"), 1)
          assert.strictEqual(picker.remembered, url.hosts[0])
          // the host goes away: its idle connection is lost, and the host forgotten
          proxy.close()
          assert.isTrue(yield* wait_until(() => picker.remembered === undefined))
          assert.strictEqual(yield* first_value(pool, "SELECT 2"), 2)
          assert.strictEqual(picker.remembered, url.hosts[1])
        }).pipe(Effect.scoped),
    )

    it.effect(
      "a backend killed (pg_terminate_backend, 57P01) forgets its host; the next connection works",
      () =>
        Effect.gen(function* () {
          const db_url = yield* fresh_postgres_database(root_url)
          const port = new URL(db_url).port || "5432"
          const { pool, picker, url } = yield* choosing_pool(
            with_hosts(db_url, `127.0.0.1:${port},localhost:${port}`, "target_session_attrs=primary"),
          )
          const pid = yield* first_value(pool, "SELECT pg_backend_pid()")
          assert.strictEqual(picker.remembered, url.hosts[0])
          const admin = yield* Effect.acquireRelease(
            Effect.promise(() => admin_client(db_url)),
            (admin) => Effect.promise(() => admin.end()),
          )
          yield* Effect.promise(() => admin.query("SELECT pg_terminate_backend($1)", [pid]))
          assert.isTrue(yield* wait_until(() => picker.remembered === undefined))
          const next = yield* first_value(pool, "SELECT pg_backend_pid()")
          assert.notStrictEqual(next, pid)
          // searched again from the first host, which is fine
          assert.strictEqual(picker.remembered, url.hosts[0])
        }).pipe(Effect.scoped),
    )

    it.effect("a connection reporting read-only (25006) forgets a read-write host", () =>
      Effect.gen(function* () {
        const db_url = yield* fresh_postgres_database(root_url)
        const port = new URL(db_url).port || "5432"
        const { pool, picker, url } = yield* choosing_pool(
          with_hosts(db_url, `127.0.0.1:${port},localhost:${port}`, "target_session_attrs=read-write"),
        )
        yield* first_value(pool, "SELECT 1")
        assert.strictEqual(picker.remembered, url.hosts[0])
        const failed = yield* Effect.exit(
          Effect.tryPromise(async () => {
            const client = await pool.connect()
            try {
              await client.query("BEGIN READ ONLY")
              await client.query("CREATE TABLE not_here (n int)")
            } finally {
              await client.query("ROLLBACK")
              client.release()
            }
          }),
        )
        assert.isTrue(Exit.isFailure(failed))
        assert.isUndefined(picker.remembered)
      }).pipe(Effect.scoped),
    )

    it.effect("Notifications listens on a multi-host URL (read-write hosts unless it says otherwise)", () =>
      Effect.gen(function* () {
        const db_url = yield* fresh_postgres_database(root_url)
        const url = with_hosts(db_url, `127.0.0.1:1,${server_host(db_url)}`)
        const arrived: Array<string> = []
        yield* Effect.gen(function* () {
          const notifications = yield* Notifications
          yield* notifications.listen("multi_host_test", {
            payload: (payload) => arrived.push(payload),
            listening: () => {},
          })
          const db = yield* Db
          yield* Effect.promise(() => db.execute(sql`SELECT pg_notify('multi_host_test', 'hello')`))
          assert.isTrue(yield* wait_until(() => arrived.includes("hello")))
        }).pipe(Effect.provide(layer_postgres({ url: Redacted.make(url), pool_size: 2 })))
      }).pipe(Effect.scoped),
    )
  })
}
