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

/** What a Drizzle handle runs its queries through: its connection (`client`) and its logger. */
interface Session {
  readonly client: unknown
  readonly logger: unknown
}

// Drizzle keeps these on the handle and on each prepared query (not public API;
// a handle without them is simply built anew).
const session_of = (db: Drizzle): Session | undefined => {
  const session = (db as unknown as { session?: Partial<Session> }).session
  return session?.client !== undefined && session.logger !== undefined ? (session as Session) : undefined
}

/** A copy of `prepared` that sends through `session`'s connection. */
const bound_to = <P extends object>(prepared: P, session: Session): P =>
  Object.assign(Object.create(Object.getPrototypeOf(prepared)) as P, prepared, {
    client: session.client,
    logger: session.logger,
  })

/**
 * Every statement by name: its builder, so tests can EXPLAIN the exact SQL
 * sent, and its prepared query on a handle, so benchmarks can time the driver
 * path without Effect.
 */
export const statement_catalog = new Map<
  string,
  {
    readonly build: (db: Drizzle) => Preparable<unknown>
    readonly prepared: (db: Drizzle) => Prepared<unknown>
  }
>()

/**
 * A query built once per handle as a named prepared statement with
 * `sql.placeholder`s, then executed with values. node-postgres parses a named
 * statement once per connection and later only binds and executes it (unless
 * the layer was made with `prepare: false`, as PgBouncer in transaction mode
 * needs: it then sends every query unnamed).
 */
export const statement = <Params extends Record<string, unknown>, Result>(
  name: string,
  build: (db: Drizzle) => Preparable<Result>,
): ((params: Params) => Effect.Effect<Result, DbError, Db>) => {
  // Keyed by handle: the pool's and each connection's entry live as long as
  // they do; a PGlite transaction's is collected with it.
  const cache = new WeakMap<Drizzle, Prepared<Result>>()
  // One built query per driver: a new handle (a new connection, or a PGlite transaction) gets
  // a copy bound to its connection instead of a rebuild (the rebuilds were
  // most of create_session's extra CPU in npm run bench).
  const built = new Map<object, Prepared<Result>>()
  const prepared_for = (db: Drizzle): Prepared<Result> => {
    let prepared = cache.get(db)
    if (prepared === undefined) {
      const session = session_of(db)
      const template = session === undefined ? undefined : built.get(Object.getPrototypeOf(session))
      prepared =
        template !== undefined && session !== undefined
          ? bound_to(template, session)
          : build(db).prepare(name)
      // the template keeps no connection, so a closed pool is not held
      if (template === undefined && session !== undefined)
        built.set(
          Object.getPrototypeOf(session),
          bound_to(prepared, { client: undefined, logger: undefined }),
        )
      cache.set(db, prepared)
    }
    return prepared
  }
  statement_catalog.set(name, { build, prepared: prepared_for })
  return (params) =>
    Db.use((db) =>
      Effect.tryPromise({
        try: () => prepared_for(db).execute(params),
        catch: (error) => DbError.from(name, error),
      }),
    )
}
