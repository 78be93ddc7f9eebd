import { assert, describe, it } from "@effect/vitest"
import { drizzle } from "drizzle-orm/node-postgres"
import { Effect, Fiber } from "effect"
import pg from "pg"
import { pool_transaction } from "../src/db/pool-transaction.ts"
import { admin_client } from "./support/admin.ts"
import {
  fresh_postgres_database,
  report_skipped_postgres,
  scoped_pool,
  server_url,
} from "./support/backends.ts"

// The connection lifecycle of a transaction on node-postgres, on the real
// server, where an interruption meets a control statement still on its way.

const APP = "esr-slow-begin"

/**
 * A pool whose connections come out of `connect` still busy for `busy_ms`
 * with a statement of their own, so the transaction's BEGIN waits in the
 * driver's queue behind it: BEGIN is on its way, not yet answered.
 */
const pool_with_slow_begin = (url: string, busy_ms: number) => {
  const pool = new pg.Pool({ connectionString: url, max: 1, application_name: APP })
  pool.on("error", () => {})
  const connect = pool.connect.bind(pool)
  pool.connect = (async () => {
    const client = await connect()
    client.query(`SELECT pg_sleep(${busy_ms / 1000})`).catch(() => {})
    return client
  }) as typeof pool.connect
  return pool
}

/** What the server says this pool's connection is doing. */
const state_of_connection = (url: string) =>
  Effect.promise(async () => {
    const admin = await admin_client(url)
    try {
      const { rows } = await admin.query<{ state: string }>(
        "SELECT state FROM pg_stat_activity WHERE application_name = $1",
        [APP],
      )
      return rows.map((row) => row.state)
    } finally {
      await admin.end()
    }
  })

if (server_url !== undefined) {
  describe("pool_transaction on postgres", () => {
    it.live("interrupted while BEGIN is on its way, the connection goes back outside any transaction", () =>
      Effect.gen(function* () {
        const url = yield* fresh_postgres_database(server_url as string)
        const pool = yield* scoped_pool(pool_with_slow_begin(url, 150))
        const transaction = pool_transaction(pool, (client) => drizzle({ client }))
        const fiber = yield* Effect.forkChild(transaction(Effect.never))
        yield* Effect.sleep(30)
        yield* Fiber.interrupt(fiber)
        // BEGIN runs after the interruption; the connection, back in the pool, must not stay inside it
        yield* Effect.sleep(400)
        assert.deepStrictEqual(yield* state_of_connection(url), ["idle"])
      }).pipe(Effect.scoped),
    )
  })
} else {
  describe("pool_transaction", () => {
    report_skipped_postgres("pool_transaction")
  })
}
