import { types } from "@electric-sql/pglite"

// Drizzle hands PGlite these parsers with every query, so that date and time
// values come back as text for Drizzle's own column mapping. PGlite merges
// per-query parsers into its full parser table on every query (bench:pglite:
// repo/raw 0.48 before this, 0.58-0.70 after). Installed once on the client
// instead, they can be dropped from each query.
const identity = (value: string) => value
export const text_parsers: Readonly<Record<number, (value: string) => string>> = Object.fromEntries(
  [types.TIMESTAMP, types.TIMESTAMPTZ, types.INTERVAL, types.DATE, 1231, 1115, 1185, 1187, 1182].map(
    (oid) => [oid, identity],
  ),
)

interface QueryOptions {
  readonly parsers?: Record<number, unknown>
}

interface Queryable {
  query(sql: string, params?: Array<unknown>, options?: QueryOptions): Promise<unknown>
  transaction?(callback: (tx: Queryable) => Promise<unknown>): Promise<unknown>
}

/** Per-query parsers that the client already applies (see `text_parsers`) are left out. */
const without_installed_parsers = (options: QueryOptions | undefined): QueryOptions | undefined => {
  if (options?.parsers === undefined) return options
  if (!Object.keys(options.parsers).every((oid) => Number(oid) in text_parsers)) return options
  const { parsers: _, ...rest } = options
  return rest
}

/**
 * `client` as Drizzle sees it: queries, and queries inside its transactions,
 * skip the per-query parsers that `text_parsers` already installed.
 */
export const skip_installed_parsers = <Client extends Queryable>(client: Client): Client =>
  new Proxy(client, {
    get(target, key) {
      if (key === "query")
        return (sql: string, params?: Array<unknown>, options?: QueryOptions) =>
          target.query(sql, params, without_installed_parsers(options))
      if (key === "transaction" && target.transaction !== undefined)
        return (callback: (tx: Queryable) => Promise<unknown>) =>
          target.transaction?.((tx) => callback(skip_installed_parsers(tx)))
      const value: unknown = Reflect.get(target, key, target)
      return typeof value === "function" ? value.bind(target) : value
    },
  })
