import { Effect, type Scope } from "effect"
import type pg from "pg"
import type { Drizzle } from "./handle.js"
import { FENCE_MAX_AGE_MS, type StandbyReadsShape } from "./standby-reads.js"

// Standby reads on node-postgres (see standby-reads.ts for the rule): the
// fence fetched from the primary every FENCE_REFRESH_MS, and a write's wait
// for the standbys read off the primary's pg_stat_replication.

/** How often the fence is fetched: a standby more than about this far behind is not read. */
export const FENCE_REFRESH_MS = 100

/** How often a write asks again whether the standbys have applied it. */
const SETTLE_POLL_MS = 5

/** Timers in real time: the fence ages in real time whatever Clock a test runs under. */
export const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Whether the write at `target` is applied everywhere a reader may read:
 * every connected standby has replayed it, and the synchronous standbys the
 * primary names are all among them. Without synchronous standbys (the
 * primary runs alone, as pg_auto_failover's wait_primary does while a standby
 * is down) a standby that is not connected may still come back behind: not
 * confirmed.
 */
const SETTLE_SQL = `SELECT t.target::text AS target,
  current_setting('synchronous_standby_names') AS sync_names,
  coalesce((SELECT array_agg(lower(application_name)) FROM pg_stat_replication WHERE replay_lsn >= t.target), '{}') AS applied,
  (SELECT count(*)::int FROM pg_stat_replication WHERE replay_lsn IS NULL OR replay_lsn < t.target) AS behind
FROM (SELECT coalesce($1::pg_lsn, pg_current_wal_flush_lsn()) AS target) t`

interface SettleRow {
  readonly target: string
  readonly sync_names: string
  readonly applied: ReadonlyArray<string>
  readonly behind: number
}

/**
 * The standby names in `synchronous_standby_names` (`ANY 1 (a, b)`,
 * `FIRST 2 (a, b)`, `2 (a, b)`, `a, b`, `*`), lower case as PostgreSQL
 * compares them.
 */
export const synchronous_standby_names = (setting: string): ReadonlyArray<string> => {
  const listed = /\(([^)]*)\)/.exec(setting)?.[1] ?? setting
  return listed
    .split(",")
    .map((name) =>
      name
        .trim()
        .replace(/^"(.*)"$/, "$1")
        .toLowerCase(),
    )
    .filter((name) => name !== "")
}

export const is_applied_everywhere = (row: SettleRow): boolean => {
  const named = synchronous_standby_names(row.sync_names)
  if (named.length === 0 || row.behind > 0) return false
  return named.includes("*") ? row.applied.length > 0 : named.every((name) => row.applied.includes(name))
}

/**
 * Standby reads over `standbys` (a pool on the read URL, `handle` its Drizzle
 * handle), fenced by `primary`: the fence is fetched for as long as the
 * scope lives.
 */
export const standby_reads_on = (
  primary: pg.Pool,
  handle: Drizzle,
): Effect.Effect<StandbyReadsShape, never, Scope.Scope> =>
  Effect.gen(function* () {
    let fence: { readonly lsn: string; readonly asked_at: number } | undefined
    const refresh = async () => {
      // the fence is as old as the moment it was asked for
      const asked_at = performance.now()
      try {
        const { rows } = await primary.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")
        const lsn = rows[0]?.lsn
        if (lsn !== undefined) fence = { lsn, asked_at }
      } catch {
        // the primary is unreachable: the fence ages out, and reads go to the primary (and retry there)
      }
    }
    yield* Effect.forkScoped(
      // the signal ends the loop when the scope closes: interrupting the fiber alone would leave it running
      Effect.promise(async (signal) => {
        while (!signal.aborted) {
          await refresh()
          await wait(FENCE_REFRESH_MS)
        }
      }),
    )
    const settle = Effect.promise(async () => {
      const deadline = performance.now() + FENCE_MAX_AGE_MS
      let target: string | null = null
      for (;;) {
        try {
          const result: pg.QueryResult<SettleRow> = await primary.query<SettleRow>(SETTLE_SQL, [target])
          const row: SettleRow | undefined = result.rows[0]
          if (row !== undefined) {
            target = row.target
            if (is_applied_everywhere(row)) return
          }
        } catch {
          // not known to be applied: waited out below
        }
        const left = deadline - performance.now()
        if (left <= 0) return
        await wait(Math.min(SETTLE_POLL_MS, left))
      }
    })
    return {
      handle,
      fence: () =>
        fence !== undefined && performance.now() - fence.asked_at < FENCE_MAX_AGE_MS ? fence.lsn : undefined,
      settle,
    }
  })
