import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core"
import { Context } from "effect"

/** A Drizzle handle on either driver: the pool, or a transaction. */
export type Drizzle = PgDatabase<PgQueryResultHKT>

/**
 * The handle a single statement runs on: the pool, or the current transaction
 * when inside `Database.transaction`.
 */
export class Db extends Context.Service<Db, Drizzle>()("effect-session-repo/Db") {}

/**
 * Present only inside `Database.transaction`. Queries that need atomicity with
 * a neighbouring statement require it, so calling them outside a transaction
 * does not compile.
 */
export class Tx extends Context.Service<Tx, Drizzle>()("effect-session-repo/Tx") {}
