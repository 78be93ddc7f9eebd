import { Effect } from "effect"
import pg from "pg"
import { answer_connect, type ConnectCallback } from "./client-connect.js"
import { DbError, NO_HOST_MATCHED } from "./errors.js"

// libpq's multi-host URLs (postgres://h1:p1,h2:p2/db?target_session_attrs=read-write)
// for node-postgres, which connects to one host: the URL read as libpq reads
// it, and a pg.Client that connects to the first host, in order, that accepts
// a connection and matches target_session_attrs, remembering it for the next.

/** libpq's target_session_attrs (PostgreSQL 14 and later). */
export type TargetSessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"

const TARGETS: ReadonlyArray<TargetSessionAttrs> = [
  "any",
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby",
]

/** What one connection is checked for: prefer-standby is a search for a standby, then for any. */
type Check = Exclude<TargetSessionAttrs, "prefer-standby">

export interface HostPort {
  readonly host: string
  readonly port: number
}

/** A PostgreSQL URL as libpq reads its hosts, ports and target_session_attrs. */
export interface PostgresUrl {
  /** In the URL's order. */
  readonly hosts: ReadonlyArray<HostPort>
  /** As the URL says; undefined when it does not. */
  readonly target_session_attrs: TargetSessionAttrs | undefined
  /** connect_timeout, for each host tried (libpq: at least 2 s); undefined when the URL has none. */
  readonly connect_timeout_ms: number | undefined
  /** sslmode as the URL says (the last one given); undefined when it does not. */
  readonly sslmode: string | undefined
  /**
   * The URL node-postgres is given: this one with one host; with several in
   * its host part, `localhost` in their place (pg reads one host), each
   * connection then aimed by the Client `host_choosing_client` makes.
   */
  readonly pg_url: string
}

/** libpq's default port (the one PostgreSQL is built with), for a host listed without one. */
const DEFAULT_PORT = 5432

/** `host:port`, the IPv6 address in brackets: how hosts are named in messages (never user or password). */
export const host_name = ({ host, port }: HostPort): string =>
  `${host.includes(":") ? `[${host}]` : host}:${port}`

const decode = (text: string): string | undefined => {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

/** A value quoted in a message only when it is a plain word: it comes from a URL that may hold secrets. */
const word = (value: string) => (/^[\w-]{1,32}$/.test(value) ? ` (it is ${value})` : "")

/** The host part's entries, split as libpq does: `host[:port]` or `[ipv6][:port]`, separated by commas. */
const netloc_entries = (netloc: string): Array<{ readonly host: string; readonly port: string }> | string => {
  const entries: Array<{ host: string; port: string }> = []
  let i = 0
  for (;;) {
    const start = i
    let host: string
    if (netloc[i] === "[") {
      const close = netloc.indexOf("]", i)
      if (close < 0) return "an IPv6 host in the URL has no closing ]"
      const text = netloc.slice(i + 1, close)
      host = decode(text) ?? text
      if (host === "") return "an IPv6 host in the URL is empty"
      i = close + 1
      if (i < netloc.length && netloc[i] !== ":" && netloc[i] !== ",")
        return "an IPv6 host in the URL is followed by something other than :port or a comma"
    } else {
      while (i < netloc.length && netloc[i] !== ":" && netloc[i] !== ",") i++
      host = decode(netloc.slice(start, i)) ?? netloc.slice(start, i)
    }
    let port = ""
    if (netloc[i] === ":") {
      const port_start = i + 1
      while (i < netloc.length && netloc[i] !== ",") i++
      port = netloc.slice(port_start, i)
    }
    entries.push({ host, port })
    if (netloc[i] !== ",") return entries
    i++
  }
}

/**
 * The query's parameters, decoded as libpq does (no `+` for space); the last
 * of a name wins. Leniently, as node-postgres reads them: a name without `=`
 * is empty, and a broken percent-encoding is kept as it is.
 */
const query_params = (query: string): Map<string, string> => {
  const params = new Map<string, string>()
  for (const pair of query.split("&")) {
    if (pair === "") continue
    const equals = pair.indexOf("=")
    const [name, value] = equals < 0 ? [pair, ""] : [pair.slice(0, equals), pair.slice(equals + 1)]
    params.set(decode(name) ?? name, decode(value) ?? value)
  }
  return params
}

const parse_port = (text: string): number | string => {
  if (text === "") return DEFAULT_PORT
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN
  return port >= 1 && port <= 65535 ? port : "a port in the URL is not a number from 1 to 65535"
}

/** `url` read, or why it cannot be: libpq's rules, see `parse_postgres_url`. */
const parse = (url: string): PostgresUrl | string => {
  const scheme = /^postgres(?:ql)?:\/\//i.exec(url)?.[0]
  if (scheme === undefined) return "the database URL must start with postgres:// or postgresql://"
  const rest = url.slice(scheme.length)
  // the authority ends where the path or the query starts, as node-postgres (WHATWG URL) reads it:
  // its user and password must be the ones pg reads from `pg_url`
  const authority_end = rest.search(/[/?#]/)
  const authority = authority_end < 0 ? rest : rest.slice(0, authority_end)
  const at = authority.lastIndexOf("@")
  const netloc = authority.slice(at + 1)
  const entries = netloc_entries(netloc)
  if (typeof entries === "string") return entries
  const question = rest.indexOf("?", authority_end < 0 ? rest.length : authority_end)
  const params =
    question < 0 ? new Map<string, string>() : query_params(rest.slice(question + 1).split("#")[0] ?? "")

  // host= and port= in the query replace the host part's, as in libpq
  const host_param = params.get("host")
  const port_param = params.get("port")
  const host_texts = host_param === undefined ? entries.map((entry) => entry.host) : host_param.split(",")
  const port_texts =
    port_param !== undefined
      ? port_param.split(",")
      : host_param === undefined
        ? entries.map((entry) => entry.port)
        : [""]
  // one port serves every host; otherwise one port for each host
  if (port_texts.length !== 1 && port_texts.length !== host_texts.length)
    return `the URL lists ${port_texts.length} ports for ${host_texts.length} hosts: give one port for all, or one for each`
  const hosts: Array<HostPort> = []
  for (const [index, host] of host_texts.entries()) {
    const port = parse_port(port_texts.length === 1 ? (port_texts[0] ?? "") : (port_texts[index] ?? ""))
    if (typeof port === "string") return port
    // an empty host is the default one (node-postgres's: localhost)
    hosts.push({ host: host === "" ? "localhost" : host, port })
  }

  const attrs = params.get("target_session_attrs")
  if (attrs !== undefined && !TARGETS.includes(attrs as TargetSessionAttrs))
    return `target_session_attrs must be one of ${TARGETS.join(", ")}${word(attrs)}`

  // read only for several hosts: with one, node-postgres ignores it, as it always has
  const timeout = hosts.length > 1 ? params.get("connect_timeout") : undefined
  let connect_timeout_ms: number | undefined
  if (timeout !== undefined && timeout.trim() !== "") {
    if (!/^\s*[+-]?\d+\s*$/.test(timeout))
      return `connect_timeout must be a whole number of seconds${word(timeout)}`
    const seconds = Number(timeout)
    // libpq: zero or less waits indefinitely, and 1 s is taken as 2
    if (seconds > 0) connect_timeout_ms = Math.max(seconds, 2) * 1000
  }

  // with several hosts in the host part, pg (which reads one) is given a stand-in: each
  // connection is aimed at its host before it connects
  const pg_url =
    entries.length > 1
      ? `${scheme}${authority.slice(0, at + 1)}localhost${authority_end < 0 ? "" : rest.slice(authority_end)}`
      : url
  return {
    hosts,
    target_session_attrs: attrs as TargetSessionAttrs | undefined,
    connect_timeout_ms,
    sslmode: params.get("sslmode"),
    pg_url,
  }
}

/**
 * `url` read as libpq reads it: several `host[:port]` pairs in its host part
 * (an IPv6 address in brackets; a pair without a port on 5432; an empty host
 * is localhost), or `host=` and `port=` in its query, comma lists that replace
 * the host part's (one port for all hosts, or one for each);
 * `target_session_attrs` and `connect_timeout` (each host attempt's, in
 * seconds). Everything else (user, password, database, sslmode…) applies to
 * every host, as node-postgres reads it. A URL it cannot read is `invalid_url`
 * before any connection, in a message that quotes neither the URL nor its password.
 */
export const parse_postgres_url = (url: string): Effect.Effect<PostgresUrl, DbError> =>
  Effect.suspend(() => {
    const parsed = parse(url)
    return typeof parsed !== "string"
      ? Effect.succeed(parsed)
      : Effect.fail(
          new DbError({
            operation: "postgres.open",
            reason: "invalid_url",
            message: `postgres.open failed: invalid_url: ${parsed}`,
          }),
        )
  })

/** What a server reported at startup (ParameterStatus), kept up to date while its connection lives. */
const reported_parameters = (client: pg.Client): Map<string, string> => {
  const reported = new Map<string, string>()
  client.connection.on("parameterStatus", (message: { parameterName: string; parameterValue: string }) =>
    reported.set(message.parameterName, message.parameterValue),
  )
  return reported
}

/** Which way a server failed a check: what it is instead. */
const WHAT_IT_IS: Record<Check, string> = {
  any: "",
  "read-write": "read-only",
  "read-only": "read-write",
  primary: "a standby",
  standby: "a primary",
}

/**
 * Whether a session matches `check`, as libpq 14+ decides: from what the server
 * reported at startup (`default_transaction_read_only` and `in_hot_standby`,
 * PostgreSQL 14 and later: no query), else from the query libpq sends to older
 * servers (`SHOW transaction_read_only`, `SELECT pg_is_in_recovery()`).
 */
export const session_matches = async (
  check: Check,
  reported: ReadonlyMap<string, string>,
  first_value: (sql: string) => Promise<unknown>,
): Promise<boolean> => {
  if (check === "any") return true
  const hot_standby = reported.get("in_hot_standby")
  if (check === "read-write" || check === "read-only") {
    const read_only_default = reported.get("default_transaction_read_only")
    const read_only =
      hot_standby !== undefined && read_only_default !== undefined
        ? hot_standby === "on" || read_only_default === "on"
        : String(await first_value("SHOW transaction_read_only")) === "on"
    return read_only === (check === "read-only")
  }
  const standby =
    hot_standby !== undefined
      ? hot_standby === "on"
      : String(await first_value("SELECT pg_catalog.pg_is_in_recovery()")) === "true"
  return standby === (check === "standby")
}

const first_value_on = (client: pg.Client) => async (sql: string) =>
  Object.values((await client.query(sql)).rows[0] ?? {})[0]

/** The error a connection fails with when no host matched (see errors.ts). */
const no_host_matched = (message: string): Error =>
  Object.assign(new Error(message), { code: NO_HOST_MATCHED })

/** Whose state a check wants, for messages. */
const WANTED: Record<TargetSessionAttrs, string> = {
  any: "any connection",
  "read-write": "a read-write session",
  "read-only": "a read-only session",
  primary: "a primary",
  standby: "a standby",
  "prefer-standby": "any connection",
}

type ProbeOutcome =
  | { readonly kind: "match" }
  | { readonly kind: "mismatch" }
  | { readonly kind: "failed"; readonly error: unknown; readonly timed_out: boolean }

// A reason that names a mistake in the URL or the server's set-up rather than
// a server down or changing role: when every host fails with the same one, the
// connection fails with the first host's error itself (its own reason and hint).
const SETUP_REASONS: ReadonlySet<DbError["reason"]> = new Set([
  "authentication_failed",
  "database_missing",
  "tls",
  "host_not_found",
])

/**
 * Which host new connections go to: the one that matched last, remembered
 * until a connection to it fails or reports a failover sign; else the first,
 * in the URL's order, that a short probe connection finds accepting and
 * matching (one search at a time, shared by every connection waiting for it).
 */
export class HostPicker {
  #remembered: { readonly host: HostPort; readonly check: Check } | undefined
  #searching: Promise<{ readonly host: HostPort; readonly check: Check }> | undefined

  constructor(
    readonly hosts: ReadonlyArray<HostPort>,
    readonly target: TargetSessionAttrs,
    private readonly probe: (host: HostPort, check: Check) => Promise<ProbeOutcome>,
  ) {}

  /** The host new connections go to now, if one is remembered. */
  get remembered(): HostPort | undefined {
    return this.#remembered?.host
  }

  /**
   * The host for a new connection, what it must be checked for, and whether a
   * probe has just checked it (the connection then need not).
   */
  async choose(): Promise<{ readonly host: HostPort; readonly check: Check; readonly verified: boolean }> {
    const remembered = this.#remembered
    if (remembered !== undefined) return { ...remembered, verified: false }
    const [only] = this.hosts
    // one host: nothing to choose; the connection itself is checked (prefer-standby takes it whatever it is)
    if (this.hosts.length === 1 && only !== undefined)
      return { host: only, check: this.target === "prefer-standby" ? "any" : this.target, verified: false }
    if (this.#searching === undefined) {
      this.#searching = this.#search().finally(() => {
        this.#searching = undefined
      })
    }
    return { ...(await this.#searching), verified: true }
  }

  /** Forgets `host` if it is the one remembered: the next connection searches again. */
  forget(host: HostPort): void {
    if (this.#remembered?.host === host) this.#remembered = undefined
  }

  async #search(): Promise<{ readonly host: HostPort; readonly check: Check }> {
    const tried: Array<string> = []
    const failures: Array<unknown> = []
    let first_accepting: HostPort | undefined
    let mismatched = false
    const check: Check = this.target === "prefer-standby" ? "standby" : this.target
    for (const host of this.hosts) {
      const outcome = await this.probe(host, check)
      if (outcome.kind === "match") {
        this.#remembered = { host, check }
        return this.#remembered
      }
      if (outcome.kind === "mismatch") {
        mismatched = true
        first_accepting ??= host
        tried.push(`${host_name(host)} is ${WHAT_IT_IS[check]}`)
      } else {
        failures.push(outcome.error)
        const reason = outcome.timed_out ? "timeout" : DbError.from("postgres.connect", outcome.error).reason
        tried.push(
          `${host_name(host)} ${reason === "timeout" ? "did not answer in time" : `failed (${reason})`}`,
        )
      }
    }
    // prefer-standby: no standby, so the first host that accepted, whatever it is (libpq's second pass)
    if (this.target === "prefer-standby" && first_accepting !== undefined) {
      this.#remembered = { host: first_accepting, check: "any" }
      return this.#remembered
    }
    const reasons = new Set(failures.map((error) => DbError.from("postgres.connect", error).reason))
    const [reason] = reasons
    if (!mismatched && reasons.size === 1 && reason !== undefined && SETUP_REASONS.has(reason))
      throw failures[0]
    throw no_host_matched(
      `no host accepted ${WANTED[this.target]} (target_session_attrs=${this.target}): ${tried.join("; ")}`,
    )
  }
}

// SQLSTATEs that a host is failing over or no longer what was asked: the
// server shutting down (57P01 admin_shutdown, which pg_terminate_backend also
// sends; 57P02 crash_shutdown) or starting (57P03 cannot_connect_now).
const FAILOVER_CODES: ReadonlySet<string> = new Set(["57P01", "57P02", "57P03"])
/** 25006 read_only_sql_transaction: a sign only for a host chosen to take writes. */
const READ_ONLY_CODE = "25006"

const ignore = () => {}

/** Points `client`, not yet connected, at `host` (what pg's Client connects to, and what it tells a password function). */
const aim = (client: pg.Client, { host, port }: HostPort) => {
  client.host = host
  client.port = port
  const parameters = (client as unknown as { connectionParameters?: { host: string; port: number } })
    .connectionParameters
  if (parameters !== undefined) {
    parameters.host = host
    parameters.port = port
  }
}

/**
 * A probe: one connection to `host` by a `Client` (pg's, or one that keeps
 * libpq's sslmode), checked for `check`, then closed. `config` bounds its
 * wait (connectionTimeoutMillis).
 */
const probe_with =
  (config: pg.ClientConfig, Client: typeof pg.Client) =>
  async (host: HostPort, check: Check): Promise<ProbeOutcome> => {
    const client = new Client(config)
    const reported = reported_parameters(client)
    client.on("error", ignore)
    aim(client, host)
    try {
      await client.connect()
    } catch (error) {
      // pg's own connect timeout ends the socket with this message
      return {
        kind: "failed",
        error,
        timed_out: error instanceof Error && error.message === "timeout expired",
      }
    }
    try {
      return (await session_matches(check, reported, first_value_on(client)))
        ? { kind: "match" }
        : { kind: "mismatch" }
    } catch (error) {
      return { kind: "failed", error, timed_out: false }
    } finally {
      client.end().catch(ignore)
    }
  }

/**
 * The pg.Client for `url` in a pool (pg.Pool's `Client` option) or alone,
 * whose `connect()` first takes a host from `picker` and then connects there,
 * checking the session when no probe just did. A connection that fails, or
 * whose host no longer matches, fails with a connection failure (the read
 * retry's, and the caller's, lost connection) and makes `picker` forget the
 * host; so do a connection lost later and the failover SQLSTATEs above.
 */
const picking_client = (
  picker: HostPicker,
  aims: boolean,
  connect_timeout_ms: number | undefined,
  Base: typeof pg.Client,
) =>
  class HostChoosingClient extends Base {
    readonly #reported = reported_parameters(this)
    #host: HostPort | undefined
    #write_target = picker.target === "read-write" || picker.target === "primary"

    constructor(config?: string | pg.ClientConfig) {
      // each connection's own attempt is bounded by the URL's connect_timeout too
      super(
        typeof config === "object" && connect_timeout_ms !== undefined
          ? { ...config, connectionTimeoutMillis: connect_timeout_ms }
          : config,
      )
      // a lost connection: pg emits 'error' (a listener of its own, so none is an uncaught
      // exception while the pool has not yet put its own on the client)
      this.on("error", () => this.#failover_sign())
      // an error the server sends, to a query or before it closes the connection
      this.connection.on("errorMessage", (message: { code?: string }) => {
        const code = message.code ?? ""
        if (FAILOVER_CODES.has(code) || (code === READ_ONLY_CODE && this.#write_target)) this.#failover_sign()
      })
    }

    #failover_sign() {
      if (this.#host !== undefined) picker.forget(this.#host)
    }

    override connect(): Promise<pg.Client>
    override connect(callback: ConnectCallback): void
    override connect(callback?: ConnectCallback): Promise<pg.Client> | undefined {
      return answer_connect(this.#connect(), callback)
    }

    async #connect(): Promise<pg.Client> {
      const choice = await this.#choose()
      this.#host = choice.host
      if (aims) aim(this, choice.host)
      try {
        await super.connect()
      } catch (error) {
        picker.forget(choice.host)
        throw error
      }
      if (choice.verified) return this
      let matches: boolean
      try {
        matches = await session_matches(choice.check, this.#reported, first_value_on(this))
      } catch (error) {
        picker.forget(choice.host)
        this.end().catch(ignore)
        throw error
      }
      if (matches) return this
      picker.forget(choice.host)
      this.end().catch(ignore)
      throw no_host_matched(
        `no host accepted ${WANTED[picker.target]} (target_session_attrs=${picker.target}): ` +
          `${host_name(choice.host)} is ${WHAT_IT_IS[choice.check]}`,
      )
    }

    /**
     * The host, unless pg.Pool's connect timeout ends this connection's socket
     * while a search runs: then the connection fails at once, as pg's would.
     */
    #choose() {
      const socket = this.connection.stream
      return new Promise<Awaited<ReturnType<HostPicker["choose"]>>>((resolve, reject) => {
        const closed = () => reject(new Error("timeout expired"))
        if (socket.destroyed) return closed()
        socket.once("close", closed)
        picker.choose().then(
          (choice) => {
            socket.off("close", closed)
            resolve(choice)
          },
          (error: unknown) => {
            socket.off("close", closed)
            reject(error)
          },
        )
      })
    }
  }

/**
 * The pg.Client class for `url` (pg.Pool's `Client` option, or for a
 * connection of its own), given the pool's `config` (its connection string,
 * `url.pg_url`, and timeouts); undefined when `Base` does: one host and any
 * session, today's behaviour and cost. `default_target` is taken when the URL
 * has several hosts and says nothing (a listener needs the primary). `Base`
 * is the Client it extends and probes with: pg's, or one that keeps libpq's
 * sslmode (postgres.ts), which then applies to each host.
 *
 * Each connection costs what it cost before, plus, on PostgreSQL before 14,
 * the one query libpq also sends (14 and later report what is checked at
 * startup). Only when no host is remembered (the first connection, after a
 * failover sign) is a probe connection made to each host in turn until one
 * matches. `connect_timeout` bounds each attempt; the pool's connect timeout
 * still bounds the whole wait for a connection.
 */
export const host_choosing_client = (
  url: PostgresUrl,
  config: pg.ClientConfig,
  default_target: TargetSessionAttrs = "any",
  Base: typeof pg.Client = pg.Client,
): { readonly Client: typeof pg.Client; readonly picker: HostPicker } | undefined => {
  const several = url.hosts.length > 1
  const target = url.target_session_attrs ?? (several ? default_target : "any")
  if (!several && target === "any") return undefined
  const attempt_config: pg.ClientConfig =
    url.connect_timeout_ms === undefined
      ? config
      : { ...config, connectionTimeoutMillis: url.connect_timeout_ms }
  const picker = new HostPicker(url.hosts, target, probe_with(attempt_config, Base))
  return { Client: picking_client(picker, several, url.connect_timeout_ms, Base), picker }
}
