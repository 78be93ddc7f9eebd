import type pg from "pg"
import { wait } from "./postgres-standby.js"
import type { Send, StatementSql } from "./send.js"

// Writes that wait for a standby (`writes_wait_for_standby`): a write returns
// only once a standby has flushed it, so a failover, which promotes a
// standby, cannot undo it. PostgreSQL's own synchronous replication promises
// this only while the primary names synchronous standbys, and HA managers
// stop naming them to stay writable: pg_auto_failover's wait_primary,
// Patroni's non-strict synchronous mode. And in a failover's first seconds
// the old primary, restarted by its manager, can take writes its promoted
// standby never sees (seen in CI: docs/design.md, "Writes a failover cannot
// undo").

/** How long a write waits for a standby by default, in seconds. */
export const STANDBY_WAIT_SECONDS = 5

/** How often a write asks again whether a standby has flushed it. */
const POLL_MS = 2

/** The code of the error a write fails with when no standby confirmed it. */
export const NOT_REPLICATED = "NOT_REPLICATED"

/**
 * Whether a standby has flushed `target` (first asked: the primary's WAL
 * flushed so far, which takes in the write just made, since its COMMIT
 * returned after flushing it; the insert position would not do, as it can
 * sit past a page header no standby reports), whether the role may see the
 * standbys' positions at all, and whether its commits flush (with
 * synchronous_commit off a COMMIT returns first).
 */
const CONFIRM_SQL = `SELECT t.target::text AS target,
  EXISTS (SELECT 1 FROM pg_stat_replication WHERE flush_lsn >= t.target) AS flushed,
  pg_has_role('pg_read_all_stats', 'USAGE') AS may_see,
  current_setting('synchronous_commit') <> 'off' AS flushes
FROM (SELECT coalesce($1::pg_lsn, pg_current_wal_flush_lsn()) AS target) t`

interface ConfirmRow {
  readonly target: string
  readonly flushed: boolean
  readonly may_see: boolean
  readonly flushes: boolean
}

/** A write not confirmed; `cause`: asking failed, and the connection is in doubt. */
const not_replicated = (message: string, cause?: unknown) =>
  Object.assign(new Error(message, cause === undefined ? {} : { cause }), { code: NOT_REPLICATED })

/**
 * Resolves once a standby of the server `client` is connected to has flushed
 * every write made there before the call (run it on the connection that
 * wrote: another could reach a new primary after a failover, whose standbys
 * say nothing of this write). Rejects with code NOT_REPLICATED after
 * `max_wait_ms` without one, at once when the role cannot see the standbys'
 * positions, and when asking fails. `signal` stops the wait (rejected).
 */
export const wait_for_standby = async (
  client: Pick<pg.ClientBase, "query">,
  max_wait_ms: number,
  signal?: AbortSignal,
): Promise<void> => {
  const deadline = performance.now() + max_wait_ms
  let target: string | null = null
  for (;;) {
    let row: ConfirmRow | undefined
    try {
      row = (await client.query<ConfirmRow>(CONFIRM_SQL, [target])).rows[0]
    } catch (error) {
      throw not_replicated("could not ask the primary whether a standby has the write", error)
    }
    if (row === undefined) throw not_replicated("the primary gave no answer")
    if (!row.flushes)
      throw not_replicated(
        "synchronous_commit is off, so a write's COMMIT returns before it is on disk: turn it on for the role",
      )
    if (row.flushed) return
    if (!row.may_see)
      throw not_replicated(
        "the role cannot see the standbys' positions in pg_stat_replication: grant it pg_monitor",
      )
    target = row.target
    const left = deadline - performance.now()
    if (left <= 0 || signal?.aborted === true)
      throw not_replicated(
        `no standby confirmed the write within ${Math.round(max_wait_ms / 1000)} s; ` +
          "it committed on the primary, and a failover may undo it: retry once a standby is back",
      )
    await wait(Math.min(POLL_MS, left))
  }
}

// Whether a statement writes, by its SQL as Drizzle builds it (a write with
// its audit rows is a SELECT over data-modifying CTEs), once per statement;
// test/explain.test.ts checks it against every statement's plan.
const writes = new WeakMap<StatementSql, boolean>()
export const is_write = (statement: StatementSql): boolean => {
  let found = writes.get(statement)
  if (found === undefined) {
    found = /\b(insert\s+into|delete\s+from|update\s+")/i.test(statement.text)
    writes.set(statement, found)
  }
  return found
}

// Writes that return without a standby's word (writes_wait_for_standby leaves
// touches asynchronous): while no standby streams, each would hold a pool
// connection for the whole wait, and validations would starve behind them.
const no_standby_needed = new WeakSet<StatementSql>()
export const needs_no_standby = (statement: StatementSql): void => {
  no_standby_needed.add(statement)
}

/**
 * Sends on a connection of `pool` as `send_on(connection)` does, and once a
 * write has returned, waits there for a standby to confirm it before the
 * connection goes back. A connection whose statement failed, or that failed
 * to say whether a standby has the write, is closed, as `pool.query` does.
 */
export const confirming_send =
  (pool: pg.Pool, send_on: (client: pg.PoolClient) => Send, max_wait_ms: number): Send =>
  async (statement, values) => {
    const client = await pool.connect()
    let in_doubt: Error | undefined
    try {
      const result = await send_on(client)(statement, values)
      if (is_write(statement) && !no_standby_needed.has(statement))
        await wait_for_standby(client, max_wait_ms)
      return result
    } catch (error) {
      const unconfirmed = (error as { code?: unknown }).code === NOT_REPLICATED
      if (!unconfirmed || (error as Error).cause !== undefined)
        in_doubt = error instanceof Error ? error : new Error(String(error))
      throw error
    } finally {
      client.release(in_doubt)
    }
  }
