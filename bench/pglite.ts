// npm run bench:pglite: validate on embedded PGlite (in memory), SessionRepo
// against the same query on the raw PGlite client, alternating, one caller at
// a time (PGlite has one connection). Writes bench/pglite.json.
import type { PGlite } from "@electric-sql/pglite"
import { Effect, ManagedRuntime } from "effect"
import { Db, generate_session_token, hash_session_token, migrate, SessionRepo } from "../src/index.ts"
import { layer_pglite } from "../src/pglite.ts"
import { machine, ratio, repo_on, run_for, seen_ahead, summarize, write_results } from "./harness.ts"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const SESSIONS = 10_000
const runtime = ManagedRuntime.make(repo_on(layer_pglite()))
try {
  await runtime.runPromise(migrate)
  const client = await runtime.runPromise(
    Db.use((db) => Effect.succeed((db as unknown as { $client: PGlite }).$client)),
  )
  const account = (
    await client.query<{ id: string }>("INSERT INTO account (username) VALUES ('bench') RETURNING id")
  ).rows[0]?.id as string
  const tokens = Array.from({ length: SESSIONS }, () => Effect.runSync(generate_session_token))
  for (const token of tokens) {
    // seen ahead, as seed_sessions does: no touch falls due during the run
    await client.query(
      "INSERT INTO auth_session (id, account_id, expires_at, last_seen_at) VALUES ($1, $2, now() + interval '30 days', $3)",
      [hash_session_token(token), account, seen_ahead()],
    )
  }
  await client.query("ANALYZE auth_session")
  const pick = () => tokens[Math.floor(Math.random() * SESSIONS)] as string
  const variants: Record<string, () => Promise<unknown>> = {
    "a: SessionRepo": () => runtime.runPromise(SessionRepo.use((repo) => repo.validate(pick()))),
    "b: raw PGlite": () =>
      client.query(
        "SELECT id, account_id, created_at, expires_at, last_seen_at FROM auth_session WHERE id = $1 AND expires_at > $2",
        [hash_session_token(pick()), new Date()],
      ),
  }
  const slices = new Map<string, Array<Awaited<ReturnType<typeof run_for>>>>()
  for (let round = 0; round < 4; round++) {
    const order = round % 2 === 0 ? Object.entries(variants) : Object.entries(variants).reverse()
    for (const [name, op] of order) {
      for (let i = 0; i < 200; i++) await op()
      slices.set(name, [...(slices.get(name) ?? []), await run_for(op, 1, SECONDS)])
    }
  }
  const figures = Object.fromEntries([...slices].map(([name, measured]) => [name, summarize(measured)]))
  const a_b = ratio(figures["a: SessionRepo"], figures["b: raw PGlite"])
  console.table(figures)
  console.log(`PGlite validate, one caller: a/b ${a_b}`)
  write_results("pglite.json", { machine: await machine(), sessions: SESSIONS, figures, a_b })
} finally {
  await runtime.dispose()
}
