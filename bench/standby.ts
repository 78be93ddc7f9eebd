// npm run bench:standby: what standby reads give and cost, on the
// pg_auto_failover formation of .ci/ha-formation.sh (brought up if it is not;
// a monitor and two PostgreSQL nodes in synchronous replication, on this
// machine). The same repo, on the same database, without and with `read_url`:
// - validate at 1 and 32 callers, on the primary (a) against on the standby (b);
// - create, and create then revoke, at 1 and 8 callers: without standby reads
//   (a) against with them (b): what remote_apply and the wait for the
//   standbys cost a write;
// - each of those with writes_wait_for_standby (c) against a: what waiting
//   for a standby's flush costs (reads never wait, but take a pool connection
//   of their own).
// Variants take turns in rounds; a ratio is b's (or c's) throughput over a's
// (the median of the rounds'). All three servers share this machine's cores with
// the benchmark, so the standby adds no capacity here: the validate ratio is
// the cost of the fenced read, not the gain of a second machine.
// BENCH_STANDBY_ROUNDS (5) and BENCH_STANDBY_SECONDS (2) shorten it.
import { execFileSync } from "node:child_process"
import { Effect, ManagedRuntime, Redacted } from "effect"
import {
  admin_client,
  create_database,
  machine,
  median,
  repo_on,
  round3,
  run_for,
  seed_sessions,
  summarize,
  write_results,
} from "./harness.ts"
import { layer_postgres, SessionRepo } from "./package.ts"

const ROUNDS = Number(process.env.BENCH_STANDBY_ROUNDS ?? 5)
const SECONDS = Number(process.env.BENCH_STANDBY_SECONDS ?? 2)
const POOL = 10

const formation = (...args: Array<string>) =>
  execFileSync("bash", [new URL("../.ci/ha-formation.sh", import.meta.url).pathname, ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim()

const uri = formation("up")
const hosts = /@([^/]+)\//.exec(uri)?.[1]?.split(",") ?? []
/** Whether the node at `host` is a standby (the URI's order is not the nodes'). */
const in_recovery = async (host: string) => {
  const client = await admin_client(`postgres://postgres@${host}/postgres`)
  const { rows } = await client.query<{ standby: boolean }>("SELECT pg_is_in_recovery() AS standby")
  await client.end()
  return rows[0]?.standby === true
}
const roles = await Promise.all(hosts.map(in_recovery))
const primary_host = hosts[roles.indexOf(false)]
const standby_host = hosts[roles.indexOf(true)]
const database = await create_database(`postgres://postgres@${primary_host}/postgres`, "standby")
const name = new URL(database.url).pathname
// the new database reaches the standby with the WAL
for (let tries = 0; ; tries++) {
  try {
    const client = await admin_client(`postgres://postgres@${standby_host}${name}`)
    await client.end()
    break
  } catch (error) {
    if (tries > 100) throw error
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
const seeded = await seed_sessions(database.url, { accounts: 1000, sessions: 10_000 })
const on_nodes = (attrs: string) =>
  uri.replace(/\/[^/?]*\?/, `${name}?`).replace(/target_session_attrs=[^&]*/, attrs)
const primary_url = on_nodes("target_session_attrs=read-write")
const read_url = on_nodes("target_session_attrs=standby")

const open = (options: {
  readonly read_url?: Redacted.Redacted<string>
  readonly writes_wait_for_standby?: boolean
}) =>
  ManagedRuntime.make(
    repo_on(layer_postgres({ url: Redacted.make(primary_url), pool_size: POOL, ...options })),
  )
const runtimes = {
  a: open({}),
  b: open({ read_url: Redacted.make(read_url) }),
  c: open({ writes_wait_for_standby: true }),
}
const repos = {
  a: await runtimes.a.runPromise(SessionRepo.use(Effect.succeed)),
  b: await runtimes.b.runPromise(SessionRepo.use(Effect.succeed)),
  c: await runtimes.c.runPromise(SessionRepo.use(Effect.succeed)),
}
const token = () => seeded.tokens[Math.floor(Math.random() * seeded.tokens.length)] as string
const account = () => seeded.accounts[Math.floor(Math.random() * seeded.accounts.length)] as string
type Variant = keyof typeof repos
const VARIANTS = ["a", "b", "c"] as const
const operations = {
  validate: (v: Variant) => () => runtimes[v].runPromise(repos[v].validate(token())),
  create: (v: Variant) => () => runtimes[v].runPromise(repos[v].create_session(account() as never)),
  "create then revoke": (v: Variant) => () =>
    runtimes[v].runPromise(
      Effect.flatMap(repos[v].create_session(account() as never), ({ token }) => repos[v].revoke(token)),
    ),
}
const CONCURRENCIES = { validate: [1, 32], create: [1, 8], "create then revoke": [1, 8] } as const

const results: Array<Record<string, unknown>> = []
for (const [operation, op] of Object.entries(operations) as Array<
  [keyof typeof operations, (v: Variant) => () => Promise<unknown>]
>) {
  for (const concurrency of CONCURRENCIES[operation]) {
    // warm-up: JIT, both pools full
    for (const v of VARIANTS) await run_for(op(v), concurrency, 1)
    type Slice = Awaited<ReturnType<typeof run_for>>
    const slices: Record<Variant, Array<Slice>> = { a: [], b: [], c: [] }
    const ratios = { b: [] as Array<number>, c: [] as Array<number> }
    for (let round = 0; round < ROUNDS; round++) {
      // each variant first in turn
      const order = VARIANTS.map((_, i) => VARIANTS[(round + i) % VARIANTS.length] as Variant)
      const now: Partial<Record<Variant, number>> = {}
      for (const v of order) {
        const slice = await run_for(op(v), concurrency, SECONDS)
        slices[v].push(slice)
        now[v] = slice.latencies.length / slice.seconds
      }
      ratios.b.push(round3((now.b as number) / (now.a as number)))
      ratios.c.push(round3((now.c as number) / (now.a as number)))
    }
    const [a, b, c] = VARIANTS.map((v) => summarize(slices[v]))
    const row = { operation, concurrency, a, b, c, b_a: median(ratios.b), c_a: median(ratios.c), ratios }
    results.push(row)
    console.log(
      `${operation} at ${concurrency}: primary only ${a?.ops_per_s}/s (p50 ${a?.p50_ms} ms), ` +
        `with standby reads ${b?.ops_per_s}/s (p50 ${b?.p50_ms} ms): b/a ${row.b_a}; ` +
        `writes waiting for a standby ${c?.ops_per_s}/s (p50 ${c?.p50_ms} ms): c/a ${row.c_a}`,
    )
  }
}

write_results("standby.json", {
  machine: await machine(),
  formation: "pg_auto_failover: monitor and two PostgreSQL 15 nodes, synchronous, on this machine",
  rounds: ROUNDS,
  seconds: SECONDS,
  a: "SessionRepo, primary only",
  b: "SessionRepo with read_url (standby reads; writes with remote_apply and the wait for the standbys)",
  c: "SessionRepo with writes_wait_for_standby (every write returns once a standby has flushed it)",
  results,
})
await Promise.all(VARIANTS.map((v) => runtimes[v].dispose()))
await database.drop()
