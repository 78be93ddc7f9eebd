import { type Context, Effect } from "effect"
import { db_errors, statement_seconds } from "../observability/metrics.js"
import { DbError } from "./errors.js"
import { Db, type Drizzle } from "./handle.js"

/** `run` on the handle `db`, failing with `DbError` named `operation` (`db_query` without the lookup of `Db`). */
export const db_query_on = <A>(
  db: Drizzle,
  operation: string,
  run: (db: Drizzle) => Promise<A>,
  options?: Parameters<typeof DbError.from>[2],
): Effect.Effect<A, DbError> =>
  // timed around the driver's promise: no extra Effect step on every statement
  Effect.contextWith((context: Context.Context<never>) =>
    Effect.tryPromise({
      try: () => {
        const started = performance.now()
        const timed = () =>
          statement_seconds(operation).updateUnsafe((performance.now() - started) / 1000, context)
        return run(db).then(
          (result) => {
            timed()
            return result
          },
          (error: unknown) => {
            timed()
            throw error
          },
        )
      },
      catch: (error) => {
        const failure = DbError.from(operation, error, options)
        db_errors(failure.reason).updateUnsafe(1, context)
        return failure
      },
    }),
  )

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
