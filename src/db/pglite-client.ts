import { pglite_text_times } from "./text-times.js"

// Drizzle hands PGlite its date and time parsers with every query, and PGlite
// merges per-query parsers into its full parser table on every query
// (PGlite validate, repo/raw: 0.48 before this, 0.58-0.70 after). Installed once
// on the client (`pglite_text_times`), they can be dropped from each query.

interface QueryOptions {
  readonly parsers?: Record<number, unknown>
}

interface Queryable {
  query(sql: string, params?: Array<unknown>, options?: QueryOptions): Promise<unknown>
  transaction?(callback: (tx: Queryable) => Promise<unknown>): Promise<unknown>
}

/** Per-query parsers that the client already applies (see `pglite_text_times`) are left out. */
const without_installed_parsers = (options: QueryOptions | undefined): QueryOptions | undefined => {
  if (options?.parsers === undefined) return options
  if (!Object.keys(options.parsers).every((oid) => Number(oid) in pglite_text_times)) return options
  const { parsers: _, ...rest } = options
  return rest
}

/**
 * `client` as Drizzle sees it: queries, and queries inside its transactions,
 * skip the per-query parsers that `pglite_text_times` already installed.
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
