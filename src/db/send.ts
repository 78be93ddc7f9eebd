import type pg from "pg"
import type { StatementObserver } from "./database.js"
import type { Drizzle } from "./handle.js"
import { pg_text_times } from "./text-times.js"

/** A statement's SQL, as Drizzle built it once, under the name it is prepared by. */
export interface StatementSql {
  readonly name: string
  readonly text: string
}

/** Rows as arrays, in the order of the statement's columns; date and time values as text. */
export type Rows = ReadonlyArray<ReadonlyArray<unknown>>

/** Sends a statement with its values on a handle's connection; its rows come back as arrays. */
export type Send = (
  statement: StatementSql,
  values: ReadonlyArray<unknown>,
) => Promise<{ readonly rows: Rows }>

// The package's statements skip Drizzle's per-call query path and go straight
// to the driver (bench/profile.ts shows what that path cost): each handle a
// driver layer makes is registered here with how it sends.
const senders = new WeakMap<Drizzle, Send>()

/** `db`, registered to send the package's statements with `send`. */
export const sending_with = <Handle extends Drizzle>(db: Handle, send: Send): Handle => {
  senders.set(db, send)
  return db
}

/** How `db` sends, if a driver layer of this package made it (else Drizzle runs the statement). */
export const sender_of = (db: Drizzle): Send | undefined => senders.get(db)

/**
 * On node-postgres: a named prepared statement (parsed once per connection),
 * or unnamed where a pooler cannot keep names (`prepare: false`).
 */
export const pg_send =
  (client: pg.Pool | pg.PoolClient, prepare: boolean, observe: StatementObserver | undefined): Send =>
  (statement, values) => {
    observe?.(statement.text)
    return client.query<Array<unknown>>({
      ...(prepare ? { name: statement.name } : {}),
      text: statement.text,
      values: values as Array<unknown>,
      rowMode: "array",
      types: pg_text_times,
    })
  }

interface PgliteQueryable {
  query<Row>(
    text: string,
    values?: Array<unknown>,
    options?: { rowMode?: "array" },
  ): Promise<{ rows: Array<Row> }>
}

/** On PGlite (or one of its transactions), whose client leaves times as text (`pglite_text_times`). */
export const pglite_send =
  (client: PgliteQueryable, observe: StatementObserver | undefined): Send =>
  (statement, values) => {
    observe?.(statement.text)
    return client.query<Array<unknown>>(statement.text, values as Array<unknown>, { rowMode: "array" })
  }
