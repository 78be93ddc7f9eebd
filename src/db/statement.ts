import type { Effect } from "effect"
import type { DbError, MigrationsOwner } from "./errors.js"
import type { Db, Drizzle } from "./handle.js"
import { db_query } from "./query.js"

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

/** FNV-1a of the SQL text: statements of different session tables get different names. */
const sql_digest = (text: string): string => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193)
  return (hash >>> 0).toString(16).padStart(8, "0")
}

/** A statement as an Effect on `Db`, named after its operation, with its builder (tests EXPLAIN the exact SQL) and its prepared query on a handle (benchmarks time the driver path without Effect). */
export interface Statement<Params, Result> {
  (params: Params): Effect.Effect<Result, DbError, Db>
  readonly label: string
  readonly build: (db: Drizzle) => Preparable<unknown>
  readonly prepared: (db: Drizzle) => Prepared<Result>
}

/** Whose migrations create the tables the statements run on: named in a missing table's error. */
export interface StatementContext {
  readonly migrations: MigrationsOwner
}

/** A statement waiting for its name (see `named`). */
export type Unnamed<Params, Result> = (label: string, context: StatementContext) => Statement<Params, Result>

/**
 * A query built once per handle as a named prepared statement with
 * `sql.placeholder`s, then executed with values. node-postgres parses a named
 * statement once per connection and later only binds and executes it (unless
 * the layer was made with `prepare: false`, as PgBouncer in transaction mode
 * needs: it then sends every query unnamed). The name is the label and a
 * digest of the SQL, so two session tables on one connection never share a name.
 */
export const statement =
  <Params extends Record<string, unknown>, Result>(
    // Result is the caller's word for the rows: where they get the registered account id type
    build: (db: Drizzle) => Preparable<unknown>,
  ): Unnamed<Params, Result> =>
  (label, context) => {
    // Keyed by handle: the pool's and each connection's entry live as long as
    // they do; a PGlite transaction's is collected with it.
    const cache = new WeakMap<Drizzle, Prepared<Result>>()
    // One built query per driver: a new handle (a new connection, or a PGlite
    // transaction) gets a copy bound to its connection instead of a rebuild (the
    // rebuilds were most of create_session's extra CPU in npm run bench).
    const built = new Map<object, Prepared<Result>>()
    const prepared = (db: Drizzle): Prepared<Result> => {
      let found = cache.get(db)
      if (found === undefined) {
        const session = session_of(db)
        const template = session === undefined ? undefined : built.get(Object.getPrototypeOf(session))
        if (template !== undefined && session !== undefined) found = bound_to(template, session)
        else {
          const query = build(db)
          found = query.prepare(`${label}_${sql_digest(query.toSQL().sql)}`) as Prepared<Result>
        }
        // the template keeps no connection, so a closed pool is not held
        if (template === undefined && session !== undefined)
          built.set(Object.getPrototypeOf(session), bound_to(found, { client: undefined, logger: undefined }))
        cache.set(db, found)
      }
      return found
    }
    const run = (params: Params) => db_query(label, (db) => prepared(db).execute(params), context)
    return Object.assign(run, { label, build, prepared })
  }

/** Statements named by their keys: the name a statement is known by is the name its errors and logs carry. */
export const named = <Statements extends Record<string, Unnamed<never, unknown>>>(
  statements: Statements,
  context: StatementContext,
): { readonly [Label in keyof Statements]: ReturnType<Statements[Label]> } =>
  Object.fromEntries(
    Object.entries(statements).map(([label, unnamed]) => [label, unnamed(label, context)]),
  ) as { readonly [Label in keyof Statements]: ReturnType<Statements[Label]> }
