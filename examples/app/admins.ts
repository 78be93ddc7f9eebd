import { inArray, sql } from "drizzle-orm"
import { Effect } from "effect"
import { account, db_query } from "effect-session-repo"

/**
 * Warns about each name in `ADMIN_USERNAMES` that no account has yet: sign-up
 * is open, so whoever registers it first becomes an admin.
 */
export const warn_about_unregistered_admins = (names: ReadonlySet<string>) =>
  Effect.gen(function* () {
    if (names.size === 0) return
    const wanted = [...names].map((name) => name.toLowerCase())
    const found = yield* db_query("find_admins", (db) =>
      db
        .select({ username: sql<string>`lower(${account.username})` })
        .from(account)
        .where(inArray(sql`lower(${account.username})`, wanted)),
    )
    const registered = new Set(found.map((row) => row.username))
    for (const name of names) {
      if (!registered.has(name.toLowerCase()))
        yield* Effect.logWarning(
          `ADMIN_USERNAMES names "${name}", which no account has: whoever signs up with it first becomes an admin`,
        )
    }
  }).pipe(Effect.catch((error) => Effect.logWarning("could not check ADMIN_USERNAMES", error)))
