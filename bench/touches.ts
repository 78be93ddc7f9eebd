// What a touch costs the server: WAL bytes per touch and the share of
// touches PostgreSQL wrote as HOT updates (no index entry written), for a
// batch of due touches sent by the repo itself (SessionTouches).
import { Effect, ManagedRuntime, Redacted } from "effect"
import { admin_client, repo_on } from "./harness.ts"
import { hash_session_token, layer_postgres, SessionTouches } from "./package.ts"

const table_updates = async (client: Awaited<ReturnType<typeof admin_client>>) => {
  // statistics reach the shared counters up to a second after a transaction ends
  await new Promise((resolve) => setTimeout(resolve, 1500))
  await client.query("SELECT pg_stat_clear_snapshot()")
  const { rows } = await client.query(
    "SELECT n_tup_upd::int AS updates, n_tup_hot_upd::int AS hot FROM pg_stat_user_tables WHERE relname = 'auth_session'",
  )
  return rows[0] as { updates: number; hot: number }
}

/** Makes `tokens`' sessions due a touch, then touches each once (10 at a time) through the repo. */
export const touch_figures = async (url: string, tokens: ReadonlyArray<string>) => {
  const admin = await admin_client(url)
  const ids = tokens.map(hash_session_token)
  // due, as after two minutes of no use, in the hour the touches will write
  // (the one touch an hour of steady use that crosses into a new hour is not
  // what this measures, and in the first minutes of an hour every touch here
  // would cross); the VACUUM leaves the pages as a running table's are
  await admin.query(
    `UPDATE auth_session
     SET last_seen_at = now() - interval '2 minutes',
         last_seen_hour = date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
     WHERE id = ANY($1)`,
    [ids],
  )
  await admin.query("VACUUM auth_session")
  const before = await table_updates(admin)
  const start = (await admin.query("SELECT pg_current_wal_lsn() AS lsn")).rows[0]?.lsn as string
  const runtime = ManagedRuntime.make(repo_on(layer_postgres({ url: Redacted.make(url), pool_size: 10 })))
  await runtime.runPromise(
    Effect.forEach(ids, (id) => SessionTouches.use((touches) => touches.touch_and_wait(id)), {
      concurrency: 10,
      discard: true,
    }),
  )
  await runtime.dispose()
  const wal = Number(
    (await admin.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS bytes", [start])).rows[0]?.bytes,
  )
  const after = await table_updates(admin)
  // as seeded again (seen ahead): else, once the touch interval has passed,
  // the repo's validations of these sessions would write touches that the
  // raw baselines, which only read, do not
  await admin.query(
    `UPDATE auth_session SET last_seen_at = seeded.last_seen_at, last_seen_hour = seeded.last_seen_hour
     FROM bench_seeded_session seeded WHERE auth_session.id = seeded.id AND auth_session.id = ANY($1)`,
    [ids],
  )
  await admin.query("VACUUM auth_session")
  await admin.end()
  const updates = after.updates - before.updates
  return {
    touches: ids.length,
    updates,
    hot_share: Math.round((1000 * (after.hot - before.hot)) / Math.max(1, updates)) / 1000,
    wal_bytes_per_touch: Math.round(wal / ids.length),
  }
}
