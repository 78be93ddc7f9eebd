// npm run bench:http: what a session costs an authenticated request, end to
// end. An Effect HTTP server (bench/http-server.ts, a process of its own)
// answers GET /me behind `with_session`, with the repo without and with its
// validation cache; autocannon loads it with valid session cookies, then with
// none (401, no query), in alternating pairs. The ratio of the two
// throughputs is the figure. Each round also loads GET /answer with the same
// cookies: /me's answer without the session, so the server CPU between the
// two is the session's own. The load generator and PostgreSQL share the
// machine with the server. Writes bench/http.json.
//
// BENCH_HTTP_SECONDS (5), BENCH_HTTP_WARMUP_SECONDS (2) and BENCH_HTTP_ROUNDS
// (3) shorten it for CI.
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import autocannon from "autocannon"
import {
  create_database,
  machine,
  median,
  round3,
  seed_sessions,
  server_url,
  write_results,
} from "./harness.ts"
import { SECURE_SESSION_COOKIE_NAME } from "./package.ts"

const SERVER = server_url("bench:http")
const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 5)
const WARMUP_SECONDS = Number(process.env.BENCH_HTTP_WARMUP_SECONDS ?? 2)
const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 3)
const CONNECTIONS = 32
// one session per account, cycled through: every request validates another token
const SESSIONS = 1000
const CONFIGURATIONS = [
  { name: "without_cache", cached: false },
  { name: "with_cache", cached: true },
] as const

const children = new Set<ChildProcess>()
let drop_database: (() => Promise<void>) | undefined
// set once the clean-up has begun: servers ending after that were told to
let cleaning: Promise<void> | undefined

/** Starts bench/http-server.ts on the database at `url`; resolves with its base URL once it serves. */
const start_server = async (url: string, cached: boolean) => {
  // node with tsx as a loader, not the tsx CLI: one process, the one SIGTERM reaches
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(new URL("http-server.ts", import.meta.url))],
    {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: { ...process.env, DATABASE_URL: url, BENCH_HTTP_CACHE: cached ? "1" : "0" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  )
  children.add(child)
  child.once("exit", (code, signal) => {
    if (cleaning === undefined)
      console.error(`a server (pid ${child.pid}) ended by itself: ${code ?? signal}`)
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code, signal) =>
      reject(new Error(`the server ended (${code ?? signal}) before serving`)),
    )
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      if (line.startsWith('{"port":')) resolve(JSON.parse(line).port)
      else console.error(line)
    })
  })
  return { base: `http://127.0.0.1:${port}`, pid: child.pid as number }
}

/** SIGTERM (the server closes its pool), SIGKILL if it has not ended within 5 s. */
const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const kill = setTimeout(() => child.kill("SIGKILL"), 5000)
    child.once("exit", () => {
      clearTimeout(kill)
      resolve()
    })
    child.kill("SIGTERM")
  })

/** Every server ended and the database dropped, once, whatever happened before. */
const clean_up = () =>
  (cleaning ??= (async () => {
    await Promise.all([...children].map(stop))
    await drop_database?.()
  })())

// Ctrl-C or a CI timeout: still no server or database left behind
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => void clean_up().finally(() => process.exit(130)))

const TICKS_PER_S = Number(execFileSync("getconf", ["CLK_TCK"]).toString())

/** CPU time (µs) the process `pid` has used, from /proc: the server's own share of the machine. */
const cpu_us_of = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? []
  // utime and stime, fields 14 and 15 of stat(5), in clock ticks
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_S
}

interface Figures {
  readonly req_per_s: number
  /** connections ÷ throughput (Little's law): autocannon's percentiles are in whole ms. */
  readonly mean_ms: number
  readonly p50_ms: number
  readonly p99_ms: number
  /** The server process's CPU per request: steadier than throughput on a shared machine. */
  readonly server_cpu_us_per_req: number
}

/** The loads of a round: GET /me with a session cookie, without one, and GET /answer with the cookie. */
type Kind = "authenticated" | "anonymous" | "answer"
const KINDS: ReadonlyArray<Kind> = ["authenticated", "anonymous", "answer"]

/**
 * `seconds` of 32 connections of requests of `kind`, each authenticated
 * request (or /answer) with the next of `tokens` as its session cookie;
 * every answer must be 200, or 401 without a cookie.
 */
const load = async (
  server: { base: string; pid: number },
  kind: Kind,
  tokens: ReadonlyArray<string>,
  seconds: number,
): Promise<Figures> => {
  const cpu_before = cpu_us_of(server.pid)
  // Requests given whole, so autocannon encodes each once, before the run: a
  // request built per call (setupRequest) costs the load generator, which
  // shares the machine, more than the 401 it is compared with.
  const path = kind === "answer" ? "/answer" : "/me"
  const requests =
    kind === "anonymous"
      ? [{ method: "GET" as const, path }]
      : tokens.map((token) => ({
          method: "GET" as const,
          path,
          headers: { cookie: `${SECURE_SESSION_COOKIE_NAME}=${token}` },
        }))
  const result = await autocannon({
    url: `${server.base}${path}`,
    connections: CONNECTIONS,
    duration: seconds,
    requests,
  })
  const cpu_us = cpu_us_of(server.pid) - cpu_before
  const expected = kind === "anonymous" ? "401" : "200"
  const statuses = Object.keys(result.statusCodeStats ?? {})
  if (result.errors > 0 || statuses.some((status) => status !== expected))
    throw new Error(`expected only ${expected}: statuses ${statuses.join(", ")}, ${result.errors} errors`)
  return {
    req_per_s: Math.round(result.requests.average),
    mean_ms: round3((CONNECTIONS * 1000) / result.requests.average),
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    server_cpu_us_per_req: Math.round(cpu_us / result.requests.total),
  }
}

/** One request of each kind, checked by hand before any load: a wrong setup fails here, loudly. */
const check = async (base: string, token: string, account_id: string) => {
  const signal = AbortSignal.timeout(5000)
  const signed_in = await fetch(`${base}/me`, {
    headers: { cookie: `${SECURE_SESSION_COOKIE_NAME}=${token}` },
    signal,
  })
  const body = (await signed_in.json()) as { account_id?: string }
  if (signed_in.status !== 200 || body.account_id !== account_id)
    throw new Error(`GET /me with a session: ${signed_in.status} ${JSON.stringify(body)}`)
  const anonymous = await fetch(`${base}/me`, { signal })
  await anonymous.body?.cancel()
  if (anonymous.status !== 401) throw new Error(`GET /me without a cookie: ${anonymous.status}`)
  const answer = await fetch(`${base}/answer`, { signal })
  await answer.body?.cancel()
  if (answer.status !== 200) throw new Error(`GET /answer: ${answer.status}`)
}

/**
 * Each session validated once, a few requests at a time: with the cache,
 * every reading is then kept and younger than its maximum age (30 s) for the
 * whole run that follows, which so measures hits. (Without it the first
 * requests of a run miss, and autocannon's connections, which walk the
 * sessions in step, would all miss each one at once.)
 */
const prime = async (base: string, tokens: ReadonlyArray<string>) => {
  let next = 0
  const worker = async () => {
    while (next < tokens.length) {
      const response = await fetch(`${base}/me`, {
        headers: { cookie: `${SECURE_SESSION_COOKIE_NAME}=${tokens[next++]}` },
      })
      await response.body?.cancel()
      if (response.status !== 200) throw new Error(`priming GET /me: ${response.status}`)
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
}

/** Medians over the rounds, field by field. */
const medians = (runs: ReadonlyArray<Figures>): Figures => ({
  req_per_s: Math.round(median(runs.map((run) => run.req_per_s))),
  mean_ms: round3(median(runs.map((run) => run.mean_ms))),
  p50_ms: median(runs.map((run) => run.p50_ms)),
  p99_ms: median(runs.map((run) => run.p99_ms)),
  server_cpu_us_per_req: Math.round(median(runs.map((run) => run.server_cpu_us_per_req))),
})

try {
  const database = await create_database(SERVER, "http")
  drop_database = database.drop
  const { accounts, tokens } = await seed_sessions(database.url, { accounts: SESSIONS, sessions: SESSIONS })
  // both servers at once: the idle one costs nothing, and the pairs can alternate
  const servers = await Promise.all(CONFIGURATIONS.map(({ cached }) => start_server(database.url, cached)))
  const runs = CONFIGURATIONS.map(() => ({
    figures: { authenticated: [], anonymous: [], answer: [] } as Record<Kind, Array<Figures>>,
    ratios: [] as Array<number>,
    ratios_to_answer: [] as Array<number>,
  }))
  for (const server of servers) {
    // seed_sessions gives token i to account i
    await check(server.base, tokens[0] as string, accounts[0] as string)
    // JIT, pool connections and (with the cache) every token read once
    for (const kind of KINDS) await load(server, kind, tokens, WARMUP_SECONDS)
  }
  for (let round = 0; round < ROUNDS; round++) {
    // the order alternates, so a drift of the machine falls on both sides alike
    const order = round % 2 === 0 ? [0, 1] : [1, 0]
    for (const index of order) {
      const server = servers[index] as (typeof servers)[number]
      const run = runs[index] as (typeof runs)[number]
      await prime(server.base, tokens)
      const measured = {} as Record<Kind, Figures>
      for (const kind of KINDS) measured[kind] = await load(server, kind, tokens, SECONDS)
      for (const kind of KINDS) run.figures[kind].push(measured[kind])
      const { authenticated, anonymous, answer } = measured
      run.ratios.push(Math.round((100 * authenticated.req_per_s) / anonymous.req_per_s) / 100)
      run.ratios_to_answer.push(Math.round((100 * authenticated.req_per_s) / answer.req_per_s) / 100)
      console.log(
        `round ${round + 1} ${CONFIGURATIONS[index]?.name}: ${authenticated.req_per_s} / ${anonymous.req_per_s} req/s = ${run.ratios.at(-1)} (/answer ${answer.req_per_s} req/s)`,
      )
    }
  }
  const summary = Object.fromEntries(
    CONFIGURATIONS.map(({ name }, index) => {
      const run = runs[index] as (typeof runs)[number]
      const [authenticated, anonymous, answer] = KINDS.map((kind) => medians(run.figures[kind])) as [
        Figures,
        Figures,
        Figures,
      ]
      return [
        name,
        {
          authenticated,
          anonymous,
          answer,
          ratio: median(run.ratios),
          ratios: run.ratios,
          ratio_to_answer: median(run.ratios_to_answer),
          // the server CPU an authenticated request costs more than the 401
          over_401_cpu_us_per_req: authenticated.server_cpu_us_per_req - anonymous.server_cpu_us_per_req,
          // and more than the same answer without the session: the session's own
          session_cpu_us_per_req: authenticated.server_cpu_us_per_req - answer.server_cpu_us_per_req,
        },
      ]
    }),
  )
  console.log(
    `\nGET /me, ${CONNECTIONS} connections, ${SECONDS} s per run, ${ROUNDS} rounds (medians); autocannon and PostgreSQL share the machine`,
  )
  for (const [name, figures] of Object.entries(summary)) {
    const line = (figure: Figures) =>
      `${figure.req_per_s} req/s, mean ${figure.mean_ms} ms, p50 ${figure.p50_ms} ms, p99 ${figure.p99_ms} ms, server ${figure.server_cpu_us_per_req} µs CPU/req`
    console.log(`${name}:`)
    console.log(`  session cookie: ${line(figures.authenticated)}`)
    console.log(`  no cookie:      ${line(figures.anonymous)}`)
    console.log(`  /answer:        ${line(figures.answer)}`)
    console.log(
      `  ratio ${figures.ratio} (rounds ${figures.ratios.join(", ")}); ${figures.over_401_cpu_us_per_req} µs of server CPU over the 401, ` +
        `of which the session's own (over /answer) ${figures.session_cpu_us_per_req}; to /answer ${figures.ratio_to_answer}`,
    )
  }
  write_results("http.json", {
    machine: await machine(),
    shared_machine: "autocannon and PostgreSQL run on the same machine as the server",
    connections: CONNECTIONS,
    seconds: SECONDS,
    rounds: ROUNDS,
    sessions: SESSIONS,
    ...summary,
  })
} finally {
  await clean_up()
}
