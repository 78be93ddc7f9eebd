import { Effect } from "effect"
import { DbError } from "./errors.ts"
import { Db, type Drizzle } from "./handle.ts"

interface Prepared<Result> {
  execute(placeholders?: Record<string, unknown>): Promise<Result>
}

interface Preparable<Result> {
  prepare(name: string): Prepared<Result>
  toSQL(): { sql: string; params: Array<unknown> }
}

/** Every statement's builder by name, so tests can EXPLAIN the exact SQL sent. */
export const statement_catalog = new Map<string, (db: Drizzle) => Preparable<unknown>>()

/**
 * A query built once per handle as a named prepared statement with
 * `sql.placeholder`s, then executed with values. postgres.js then skips the
 * Parse/Describe round trip on every later call (unless the client was made with
 * `prepare: false`, as PgBouncer in transaction mode needs).
 */
export const statement = <Params extends Record<string, unknown>, Result>(
  name: string,
  build: (db: Drizzle) => Preparable<Result>,
): ((params: Params) => Effect.Effect<Result, DbError, Db>) => {
  statement_catalog.set(name, build)
  // Keyed by handle: the pool's entry lives as long as the pool, a
  // transaction's is collected with it.
  const cache = new WeakMap<Drizzle, Prepared<Result>>()
  const prepared_for = (db: Drizzle): Prepared<Result> => {
    let prepared = cache.get(db)
    if (prepared === undefined) {
      prepared = build(db).prepare(name)
      cache.set(db, prepared)
    }
    return prepared
  }
  return (params) =>
    Db.use((db) =>
      Effect.tryPromise({
        try: () => prepared_for(db).execute(params),
        catch: (error) => DbError.from(name, error),
      }),
    )
}
