import { execFileSync } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, type Scope } from "effect"

// A PostgreSQL server of a test's own: a fresh cluster (initdb in a temporary
// directory) with the settings and pg_hba.conf lines the test needs, on a free
// loopback port, stopped and removed when the scope closes. For what the
// shared server must not change (its TLS or its pg_hba.conf). Run as the
// postgres user when the tests run as root (PostgreSQL refuses root).

/** The newest installed server's binaries (Debian keeps them under /usr/lib/postgresql/<major>/bin). */
const bin_dir = (): string | undefined => {
  const root = "/usr/lib/postgresql"
  if (!existsSync(root)) return undefined
  const major = readdirSync(root)
    .filter((name) => existsSync(join(root, name, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a))[0]
  return major === undefined ? undefined : join(root, major, "bin")
}

/** Whether a scratch server can be started here. */
export const scratch_server_available = (): boolean => bin_dir() !== undefined

const free_port = () =>
  Effect.callback<number>((resume) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resume(Effect.succeed(port)))
    })
  })

const as_postgres = (command: string, args: ReadonlyArray<string>) =>
  process.getuid?.() === 0
    ? execFileSync("runuser", ["-u", "postgres", "--", command, ...args], { stdio: "pipe" })
    : execFileSync(command, args, { stdio: "pipe" })

export interface ScratchServer {
  /** A URL of the server as `user` on database `postgres`, with `query` appended (e.g. "sslmode=require"). */
  readonly url: (user?: string, query?: string) => string
}

/**
 * Starts a scratch server with `settings` (postgresql.conf) and `hba` (its
 * whole pg_hba.conf), its superuser `postgres` trusted over the socket.
 */
export const scratch_server = (options: {
  readonly settings?: Readonly<Record<string, string>>
  readonly hba: ReadonlyArray<string>
}): Effect.Effect<ScratchServer, never, Scope.Scope> =>
  Effect.gen(function* () {
    const bin = bin_dir()
    if (bin === undefined)
      return yield* Effect.die(new Error("no PostgreSQL server binaries to start a scratch server"))
    const dir = mkdtempSync(join(tmpdir(), "esr-scratch-"))
    const data = join(dir, "data")
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim())
      const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim())
      chownSync(dir, uid, gid)
    }
    const port = yield* free_port()
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        as_postgres(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync"])
        const settings = { listen_addresses: "'127.0.0.1'", fsync: "off", ...options.settings }
        writeFileSync(
          join(data, "postgresql.auto.conf"),
          Object.entries(settings)
            .map(([name, value]) => `${name} = ${value}\n`)
            .join(""),
        )
        writeFileSync(join(data, "pg_hba.conf"), ["local all postgres trust", ...options.hba, ""].join("\n"))
        as_postgres(join(bin, "pg_ctl"), [
          "-D",
          data,
          "-w",
          "-o",
          `-p ${port} -k ${dir}`,
          "-l",
          join(dir, "log"),
          "start",
        ])
      }),
      () =>
        Effect.sync(() => {
          try {
            as_postgres(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"])
          } finally {
            rmSync(dir, { recursive: true, force: true })
          }
        }),
    )
    return {
      url: (user = "postgres", query) =>
        `postgres://${user}@127.0.0.1:${port}/postgres${query === undefined ? "" : `?${query}`}`,
    }
  })
