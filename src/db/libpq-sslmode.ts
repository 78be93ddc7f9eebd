import type { Duplex } from "node:stream"
import pg from "pg"
import { answer_connect, type ConnectCallback } from "./client-connect.js"
import { DbError } from "./errors.js"

// sslmode as libpq means it, on node-postgres: `require` encrypts without
// checking the certificate, and `prefer` / `allow` fall back between TLS and
// plain text (pg reads all three as "TLS, verified, or fail").

/**
 * node-postgres reads `sslmode=require` as `verify-full` (and warns); libpq,
 * psql and the URLs managed services hand out mean "encrypt, don't verify".
 * This keeps libpq's meaning.
 */
export const with_libpq_sslmode = (url: string): string =>
  /[?&]sslmode=/.test(url) && !/[?&]uselibpqcompat=/.test(url)
    ? `${url}${url.includes("?") ? "&" : "?"}uselibpqcompat=true`
    : url

/** The parts of pg's Connection (pg/lib/connection.js) that `plain_on_refusal` uses. */
interface PgConnection {
  ssl: unknown
  readonly stream: Duplex
  connect(port: number | string, host?: string): void
  attachListeners(stream: Duplex): void
  emit(event: "sslconnect"): boolean
}

/**
 * libpq's fallback on `client`, not yet connected: when the server answers the
 * SSLRequest with 'N' (it has no TLS), the connection goes on in plain text
 * over the same socket, the startup message next, as libpq's does (pg's fails
 * with "The server does not support SSL connections"), and `refused` is
 * told. pg reads the answer with the socket's one 'data' listener; that one is
 * replaced by one that handles 'N' and leaves any other answer to pg's. With
 * no such listener (sslnegotiation=direct, or a pg that works otherwise) pg's
 * behaviour stays.
 */
const plain_on_refusal = (client: pg.Client, refused: () => void) => {
  const connection = client.connection as unknown as PgConnection
  const connect = connection.connect
  connection.connect = (port, host) => {
    connect.call(connection, port, host)
    const stream = connection.stream
    const [answer, ...others] = stream.listeners("data") as Array<(buffer: Buffer) => void>
    if (answer === undefined || others.length > 0) return
    stream.removeListener("data", answer)
    stream.once("data", (buffer: Buffer) => {
      if (buffer.toString("utf8") !== "N") return answer.call(stream, buffer)
      refused()
      connection.ssl = false
      ;(client as unknown as { ssl: unknown }).ssl = false
      connection.attachListeners(stream)
      // pg's Client sends its startup message once the connection says it is ready for it
      connection.emit("sslconnect")
    })
  }
}

/**
 * A pg.Client that keeps libpq's `sslmode=prefer` or `allow` (`sslmode`, the
 * URL's); undefined for any other (pg's own Client does, with
 * `with_libpq_sslmode`). node-postgres reads both as "TLS or fail".
 *
 * `prefer`: TLS, unverified; a server that refuses TLS gets the rest of the
 * connection in plain text on the same socket (`plain_on_refusal`), and, once
 * one has, every later connection to that host:port goes in plain text from
 * the start: no SSLRequest, nothing more than a URL without sslmode costs.
 * `allow`: plain text; a server that refuses plain text (pg_hba.conf) fails
 * that connection with `tls`, and later connections to that host go over TLS,
 * unverified (libpq retries at once; a pg.Client cannot connect twice).
 *
 * What a host answered is remembered, per class (per pool, and its listener),
 * until a connection to it fails: a server that starts to refuse plain text
 * gets TLS again. Hosts are read at connect time, so the Client
 * `host_choosing_client` aims at each host extends this one.
 */
export const libpq_sslmode_client = (sslmode: string | undefined): typeof pg.Client | undefined => {
  if (sslmode !== "prefer" && sslmode !== "allow") return undefined
  const prefer = sslmode === "prefer"
  // host:port → whether its connections go over TLS, once its server said
  const over_tls = new Map<string, boolean>()
  return class LibpqSslmodeClient extends pg.Client {
    override connect(): Promise<pg.Client>
    override connect(callback: ConnectCallback): void
    override connect(callback?: ConnectCallback): Promise<pg.Client> | undefined {
      return answer_connect(this.#connect(), callback)
    }

    async #connect(): Promise<pg.Client> {
      const host = `${this.host}:${this.port}`
      const tls = over_tls.get(host) ?? prefer
      const self = this as unknown as { ssl: unknown; connection: PgConnection }
      if (!tls) {
        self.ssl = false
        self.connection.ssl = false
      } else if (prefer) {
        plain_on_refusal(this, () => over_tls.set(host, false))
      } else {
        // allow over TLS: libpq's, which checks no certificate
        const options = typeof self.ssl === "object" && self.ssl !== null ? self.ssl : {}
        ;(options as { rejectUnauthorized?: boolean }).rejectUnauthorized = false
        self.ssl = options
        self.connection.ssl = options
      }
      try {
        return await super.connect()
      } catch (error) {
        // in plain text, a tls failure is a server that takes this connection only over TLS
        if (!tls && DbError.from("postgres.connect", error).reason === "tls") over_tls.set(host, true)
        else over_tls.delete(host)
        throw error
      }
    }
  }
}
