import pg from "pg"

// Date and time values are read as the text PostgreSQL sends and turned into
// Dates by the columns' own decoders (Drizzle's `mapFromDriverValue`): one
// parse per value, the same on node-postgres and on PGlite.
const TEXT_TIME_OIDS: ReadonlySet<number> = new Set([
  pg.types.builtins.TIMESTAMP,
  pg.types.builtins.TIMESTAMPTZ,
  pg.types.builtins.INTERVAL,
  pg.types.builtins.DATE,
  1115, // timestamp[]
  1182, // date[]
  1185, // timestamptz[]
  1187, // interval[]
  1231, // numeric[]
])

const as_text = (value: string) => value

/** node-postgres type parsers that leave date and time values as text. */
export const pg_text_times = {
  getTypeParser: (oid: number, format?: "text" | "binary") =>
    TEXT_TIME_OIDS.has(oid) ? as_text : pg.types.getTypeParser(oid, format),
}

/** PGlite parsers (installed on the client) that leave date and time values as text. */
export const pglite_text_times: Readonly<Record<number, (value: string) => string>> = Object.fromEntries(
  [...TEXT_TIME_OIDS].map((oid) => [oid, as_text]),
)
