import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Redacted } from "effect"
import { type DbError, layer_postgres, layer_postgres_from_config, migrate } from "../src/index.ts"
import { admin_client } from "./support/admin.ts"
import { report_skipped_postgres, server_url } from "./support/backends.ts"
import { server_has_tls } from "./support/fault-service.ts"
import { type ScratchServer, scratch_server, scratch_server_available } from "./support/scratch-server.ts"

// What a user sees when the database URL is wrong: each mistake a DbError
// reason of its own, whose message says what to do, against real servers.

/** The error `migrate` (the first statement) fails with on `url`. */
const first_error = (url: string) =>
  Effect.flip(
    migrate.pipe(
      Effect.provide(layer_postgres({ url: Redacted.make(url), pool_size: 1, connect_timeout_seconds: 5 })),
    ),
  ) as Effect.Effect<DbError>

/** `error` has `reason`, a message that `says` what to do, and the driver's error as its cause. */
const expect_error = (error: DbError, reason: DbError["reason"], says: RegExp) => {
  assert.strictEqual(error._tag, "DbError")
  assert.strictEqual(error.reason, reason, error.message)
  assert.match(error.message, says)
  assert.instanceOf(error.cause, Error)
}

class ScratchTls extends Context.Service<ScratchTls, ScratchServer>()("test/ScratchTls") {}

describe("a wrong database URL is a DbError that says what to do", () => {
  it.effect("a URL of another database is invalid_url, refused before any connection", () =>
    Effect.gen(function* () {
      const error = yield* first_error("mysql://root:hunter2@127.0.0.1:3306/app")
      assert.strictEqual(error.reason, "invalid_url")
      assert.match(
        error.message,
        /must start with postgres:\/\/ or postgresql:\/\/ \(it starts with mysql:\)/,
      )
      assert.notInclude(error.message, "hunter2")
      // the same from DATABASE_URL
      const from_config = yield* Effect.flip(
        migrate.pipe(
          Effect.provide(layer_postgres_from_config),
          Effect.provide(
            ConfigProvider.layer(ConfigProvider.fromEnvRecord({ DATABASE_URL: "mysql://x@y/z" })),
          ),
        ),
      )
      assert.strictEqual((from_config as DbError).reason, "invalid_url")
    }),
  )

  it.effect("nothing listening: connection_refused at host:port, retryable", () =>
    Effect.gen(function* () {
      const error = yield* first_error("postgres://postgres@127.0.0.1:1/postgres")
      expect_error(
        error,
        "connection_refused",
        /nothing accepts connections at 127\.0\.0\.1:1: start PostgreSQL there/,
      )
      assert.isTrue(error.is_retryable)
    }),
  )

  it.effect("a host name that does not resolve: host_not_found, naming it", () =>
    Effect.gen(function* () {
      const error = yield* first_error("postgres://postgres@no-such-host.invalid/postgres")
      expect_error(error, "host_not_found", /the host name no-such-host\.invalid does not resolve/)
      assert.isFalse(error.is_retryable)
    }),
  )
})

if (server_url !== undefined) {
  const server = new URL(server_url)
  const with_ = (change: (url: URL) => void) => {
    const url = new URL(server)
    change(url)
    return url.toString()
  }

  describe("wrong database or user on the server", () => {
    it.effect("a database that does not exist: database_missing, with the createdb to run", () =>
      Effect.gen(function* () {
        const error = yield* first_error(with_((url) => (url.pathname = "/esr_no_such_database")))
        expect_error(
          error,
          "database_missing",
          /database esr_no_such_database does not exist: create it \(createdb esr_no_such_database\)/,
        )
      }),
    )

    it.effect("a user the server refuses: authentication_failed", () =>
      Effect.gen(function* () {
        const error = yield* first_error(with_((url) => (url.username = "esr_no_such_role")))
        expect_error(error, "authentication_failed", /check the user and password in the database URL/)
      }),
    )

    it.effect("a certificate that is not trusted (verify-full on a self-signed one): tls", () =>
      Effect.gen(function* () {
        const admin = yield* Effect.promise(() => admin_client(server.toString()))
        const tls = yield* Effect.promise(() => server_has_tls(admin, "connection errors")).pipe(
          Effect.ensuring(Effect.promise(() => admin.end())),
        )
        if (!tls) return
        const error = yield* first_error(with_((url) => url.searchParams.set("sslmode", "verify-full")))
        expect_error(error, "tls", /certificate is not trusted: add sslrootcert=/)
      }),
    )
  })
}

if (scratch_server_available()) {
  // a server without TLS, where one user may only connect over TLS (which it cannot)
  const tls_server = Layer.effect(
    ScratchTls,
    scratch_server({
      settings: { ssl: "off" },
      hba: ["hostnossl all esr_tls_only 127.0.0.1/32 reject", "host all all 127.0.0.1/32 trust"],
    }),
  )
  layer(tls_server, { timeout: 60_000 })("TLS the server does not match", (it) => {
    it.effect("sslmode=require against a server without TLS: tls, saying to drop sslmode", () =>
      Effect.gen(function* () {
        const scratch = yield* ScratchTls
        const error = yield* first_error(scratch.url("postgres", "sslmode=require"))
        expect_error(error, "tls", /the server does not accept TLS: drop sslmode/)
      }),
    )

    it.effect("a user the server takes only over TLS, connecting without: tls, saying to add sslmode", () =>
      Effect.gen(function* () {
        const scratch = yield* ScratchTls
        const error = yield* first_error(scratch.url("esr_tls_only"))
        expect_error(error, "tls", /only over TLS: add sslmode=verify-full/)
      }),
    )
  })
} else if (process.env.REQUIRE_POSTGRES === "1") {
  throw new Error("REQUIRE_POSTGRES=1 but no PostgreSQL server binaries to start a scratch server")
} else {
  console.warn("[connection errors] TLS cases SKIPPED: no PostgreSQL server binaries")
}

report_skipped_postgres("connection errors")
