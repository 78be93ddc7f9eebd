import { type Column, type SQL, sql } from "drizzle-orm"
import type { Drizzle } from "../db/handle.js"
import type { Preparable, Returns } from "../db/statement.js"
import type { SessionAuditTable } from "../schema/audit-table.js"
import { HASH_PREFIX_LENGTH } from "../token.js"
import { at } from "./placeholders.js"

// A change to the session table and its audit rows as one statement: the
// change in a data-modifying CTE, the audit INSERT reading its RETURNING rows.
// One statement commits or rolls back as a whole, and costs no round trip.

/** The changed rows' columns the audit rows read, by the keys the change returns. */
export type Changed = Readonly<Record<"id" | "account_id" | "client_ip" | "user_agent" | "moved", SQL>>

/** What each audit row holds, as SQL over the changed rows (absent: null; count: 1). */
export interface AuditRows {
  readonly kind: string
  readonly reason?: SQL
  readonly account_id?: SQL
  readonly session?: SQL
  readonly count?: SQL
  readonly client_ip?: SQL
  readonly user_agent?: SQL
  /** Only the changed rows that match. */
  readonly where?: SQL
  /** One row for the whole change (its count), none when it changed nothing. */
  readonly aggregate?: boolean
}

/** The prefix of a hash column that events carry (`hash_prefix` without the ellipsis). */
export const prefix_of = (hash: SQL) => sql`left(${hash}, ${sql.raw(String(HASH_PREFIX_LENGTH))})`

/**
 * `change`, and with an audit table, its audit rows (`rows` of the changed
 * rows) inserted by the same statement; the statement returns what the
 * change returns (`returns`), in its order.
 */
export const with_audit = (
  db: Drizzle,
  audit: SessionAuditTable | undefined,
  change: Preparable,
  returns: Returns,
  rows: (changed: Changed) => AuditRows,
): Preparable => {
  if (audit === undefined) return change
  const changed = db.$with("changed").as(change as never) as unknown as Changed & Record<string, SQL>
  const row = rows(changed)
  const nothing = sql`null`
  const values: Array<[Column, unknown]> = [
    [audit.at, sql`${at("now")}::timestamptz`],
    [audit.kind, sql.raw(`'${row.kind}'`)],
    [audit.reason, row.reason ?? nothing],
    [audit.account_id, row.account_id ?? nothing],
    [audit.session, row.session ?? nothing],
    [audit.count, row.aggregate ? sql`count(*)` : (row.count ?? sql`1`)],
    [audit.client_ip, row.client_ip ?? nothing],
    [audit.user_agent, row.user_agent ?? nothing],
  ]
  const columns = sql.join(
    values.map(([column]) => sql.identifier(column.name)),
    sql`, `,
  )
  const selected = sql.join(
    values.map(([, value]) => sql`${value}`),
    sql`, `,
  )
  const where = row.where === undefined ? sql`` : sql` where ${row.where}`
  const having = row.aggregate ? sql` having count(*) > 0` : sql``
  const audited = db
    .$with("audited", {})
    .as(sql`insert into ${audit} (${columns}) select ${selected} from ${changed}${where}${having}`)
  const output = Object.fromEntries(Object.keys(returns).map((key) => [key, changed[key]]))
  return db
    .with(changed as never, audited)
    .select(output as never)
    .from(changed as never)
}
