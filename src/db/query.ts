import { Effect } from "effect"
import { record_statement } from "../observability/metrics.js"
import { DbError } from "./errors.js"
import { Db, type Drizzle } from "./handle.js"

/** `run` on the handle `db`, failing with `DbError` named `operation` (`db_query` without the lookup of `Db`). */
export const db_query_on = <A>(
  db: Drizzle,
  operation: string,
  run: (db: Drizzle) => Promise<A>,
  options?: Parameters<typeof DbError.from>[2],
): Effect.Effect<A, DbError> =>
  Effect.suspend(() => {
    const started = performance.now()
    return Effect.onExit(
      Effect.tryPromise({ try: () => run(db), catch: (error) => DbError.from(operation, error, options) }),
      (exit) => record_statement(operation, started, exit),
    )
  })

/**
 * A Drizzle query of yours as an Effect on `Db` (the pool, or the current
 * transaction inside `Database.transaction`), failing with `DbError` named
 * `operation`: e.g. `db_query("find_user", (db) => db.select().from(users))`.
 */
export const db_query = <A>(
  operation: string,
  run: (db: Drizzle) => Promise<A>,
  options?: Parameters<typeof DbError.from>[2],
): Effect.Effect<A, DbError, Db> => Db.use((db) => db_query_on(db, operation, run, options))
