// The "pglite" part of npm run bench: validate on embedded PGlite (in
// memory), SessionRepo against the same statement (its SQL and values) on the
// raw PGlite client, alternating, one caller at a time (PGlite has one
// connection).
import type { PGlite } from "@electric-sql/pglite"
import { Effect, ManagedRuntime } from "effect"
import { ratio, repo_on, run_for, seen_ahead, summarize } from "./harness.ts"
import {
  Db,
  generate_session_token,
  hash_session_token,
  layer_pglite,
  migrate,
  SessionRepo,
} from "./package.ts"
import { raw_params, statements } from "./variants.ts"

const SESSIONS = 10_000

export const pglite_figures = async (seconds: number) => {
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
    // seen ahead, as seed_sessions does: no touch falls due during the run
    await client.query(
      `INSERT INTO auth_session (id, account_id, expires_at, last_seen_at)
       SELECT id, $2, now() + interval '30 days', $3 FROM unnest($1::text[]) id`,
      [tokens.map(hash_session_token), account, seen_ahead()],
    )
    await client.query("ANALYZE auth_session")
    const pick = () => tokens[Math.floor(Math.random() * SESSIONS)] as string
    const { text } = statements.session_get.sql
    const variants: Record<string, () => Promise<unknown>> = {
      "a: SessionRepo": () => runtime.runPromise(SessionRepo.use((repo) => repo.validate(pick()))),
      "b: raw PGlite": () => client.query(text, statements.session_get.values(raw_params.validate(pick()))),
    }
    const slices = new Map<string, Array<Awaited<ReturnType<typeof run_for>>>>()
    for (let round = 0; round < 4; round++) {
      const order = round % 2 === 0 ? Object.entries(variants) : Object.entries(variants).reverse()
      for (const [name, op] of order) {
        for (let i = 0; i < 200; i++) await op()
        slices.set(name, [...(slices.get(name) ?? []), await run_for(op, 1, seconds)])
      }
    }
    const figures = Object.fromEntries([...slices].map(([name, measured]) => [name, summarize(measured)]))
    return { sessions: SESSIONS, figures, a_b: ratio(figures["a: SessionRepo"], figures["b: raw PGlite"]) }
  } finally {
    await runtime.dispose()
  }
}
