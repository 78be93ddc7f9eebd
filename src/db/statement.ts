import { type Column, is, Param, Placeholder, SQL } from "drizzle-orm"
import { drizzle } from "drizzle-orm/node-postgres"
import type { Effect } from "effect"
import type { DbError, MigrationsOwner } from "./errors.js"
import type { Db, Drizzle } from "./handle.js"
import { db_query, db_query_on } from "./query.js"
import { type Rows, type StatementSql, sender_of } from "./send.js"

/** A Drizzle query, as a statement's builder returns it. */
export interface Preparable {
  prepare(name: string): { execute(placeholders?: Record<string, unknown>): Promise<unknown> }
  toSQL(): { sql: string; params: Array<unknown> }
}

/** The columns a statement returns, by the keys its rows have (its `select` or `returning` object). */
export type Returns = Readonly<Record<string, Column | SQL | SQL.Aliased>>

/**
 * A statement as an Effect on `Db`, named after its operation. Its SQL is
 * built by Drizzle once; `values` gives what is sent for a call's parameters,
 * in the SQL's order (what a raw-driver baseline sends too).
 */
export interface Statement<Params, Result> {
  (params: Params): Effect.Effect<Result, DbError, Db>
  /** The statement on `db`, for a caller that has the handle already (the validation path). */
  readonly on: (db: Drizzle, params: Params) => Effect.Effect<Result, DbError>
  readonly label: string
  readonly sql: StatementSql
  /** The placeholders' names, in the order of the SQL's parameters. */
  readonly placeholders: ReadonlyArray<string>
  readonly values: (params: Params) => Array<unknown>
}

/** Whose migrations create the tables the statements run on: named in a missing table's error. */
export interface StatementContext {
  readonly migrations: MigrationsOwner
}

/** A statement waiting for its name (see `named`). */
export type Unnamed<Params, Result> = (label: string, context: StatementContext) => Statement<Params, Result>

// Builds SQL only: it never connects.
const builder = drizzle.mock() as unknown as Drizzle

/** FNV-1a of the SQL text: statements of different session tables get different names. */
const sql_digest = (text: string): string => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193)
  return (hash >>> 0).toString(16).padStart(8, "0")
}

type Encode = (params: Record<string, unknown>) => unknown

/** How one of Drizzle's parameters gets its value: a placeholder's, encoded by its column, or a constant. */
const encoder = (param: unknown): { readonly placeholder?: string; readonly encode: Encode } => {
  if (is(param, Placeholder)) return { placeholder: param.name, encode: (params) => params[param.name] }
  if (is(param, Param) && is(param.value, Placeholder)) {
    const { name } = param.value
    return { placeholder: name, encode: (params) => param.encoder.mapToDriverValue(params[name]) }
  }
  return { encode: () => param }
}

type Decode = (value: unknown) => unknown

/** A column's decoder, or an `sql` field's (its `mapWith`; Drizzle keeps it, untyped, as `decoder`). */
const decoder = (field: Column | SQL | SQL.Aliased): Decode => {
  const expression = is(field, SQL.Aliased) ? field.sql : field
  const column = is(expression, SQL) ? (expression as unknown as { decoder: Column }).decoder : expression
  return (value) => column.mapFromDriverValue(value)
}

/** Array rows into objects keyed as `returns`, each value through its column's decoder, as Drizzle maps them. */
const row_decoder = (returns: Returns) => {
  const keys = Object.keys(returns)
  const decoders = Object.values(returns).map(decoder)
  return ({ rows }: { readonly rows: Rows }): Array<Record<string, unknown>> =>
    rows.map((row) => {
      const decoded: Record<string, unknown> = {}
      for (let i = 0; i < keys.length; i++) {
        const value = row[i]
        decoded[keys[i] as string] = value === null ? null : (decoders[i] as Decode)(value)
      }
      return decoded
    })
}

/**
 * A query built by Drizzle once, as a named prepared statement with
 * `sql.placeholder`s; each call sends its values straight to the driver of
 * the handle in `Db` (a handle a driver layer of this package made; any other
 * runs it through Drizzle). node-postgres parses a named statement once per
 * connection and later only binds and executes it (unnamed with `prepare:
 * false`, as PgBouncer in transaction mode needs). The name is the label and
 * a digest of the SQL, so two session tables on one connection never share
 * one. `returns` is the object the query selects or returns.
 */
export const statement =
  <Params extends Record<string, unknown>, Result>(
    // Result is the caller's word for the rows: where they get the registered account id type
    returns: Returns,
    build: (db: Drizzle) => Preparable,
  ): Unnamed<Params, Result> =>
  (label, context) => {
    const query = build(builder).toSQL()
    const name = `${label}_${sql_digest(query.sql)}`
    const encoders = query.params.map(encoder)
    const values = (params: Params) => encoders.map(({ encode }) => encode(params))
    const decode = row_decoder(returns)
    // a handle this package did not make (an app's own Drizzle transaction)
    const by_drizzle = new WeakMap<Drizzle, ReturnType<Preparable["prepare"]>>()
    const run_by_drizzle = (db: Drizzle, params: Params) => {
      let prepared = by_drizzle.get(db)
      if (prepared === undefined) {
        prepared = build(db).prepare(name)
        by_drizzle.set(db, prepared)
      }
      return prepared.execute(params)
    }
    const statement_sql: StatementSql = { name, text: query.sql }
    const execute = (db: Drizzle, params: Params): Promise<unknown> => {
      const send = sender_of(db)
      return send === undefined
        ? run_by_drizzle(db, params)
        : send(statement_sql, values(params)).then(decode)
    }
    const on = (db: Drizzle, params: Params) =>
      db_query_on(db, label, (handle) => execute(handle, params) as Promise<Result>, context)
    const run = (params: Params) => db_query(label, (db) => execute(db, params) as Promise<Result>, context)
    return Object.assign(run, {
      on,
      label,
      sql: statement_sql,
      placeholders: encoders.flatMap(({ placeholder }) => (placeholder === undefined ? [] : [placeholder])),
      values,
    })
  }

/** Statements named by their keys: the name a statement is known by is the name its errors and logs carry. */
export const named = <Statements extends Record<string, Unnamed<never, unknown>>>(
  statements: Statements,
  context: StatementContext,
): { readonly [Label in keyof Statements]: ReturnType<Statements[Label]> } =>
  Object.fromEntries(
    Object.entries(statements).map(([label, unnamed]) => [label, unnamed(label, context)]),
  ) as { readonly [Label in keyof Statements]: ReturnType<Statements[Label]> }
