import { eq, inArray, sql } from "drizzle-orm"
import { Context, Effect } from "effect"
import { type AuthSession, account, db_query } from "effect-session-repo"
import { HttpError } from "./http-error.ts"

/** Who may see every account's sessions and the audit log, lowercased: usernames are unique regardless of case. */
export class AdminUsernames extends Context.Service<AdminUsernames, ReadonlySet<string>>()(
  "example/AdminUsernames",
) {}

/** Whether the account is an admin's; an account deleted meanwhile is not. */
export const is_admin = (account_id: string) =>
  Effect.gen(function* () {
    const [owner] = yield* db_query("find_admin", (db) =>
      db.select({ username: account.username }).from(account).where(eq(account.id, account_id)),
    )
    return owner !== undefined && (yield* AdminUsernames).has(owner.username.toLowerCase())
  })

/** 403 unless the session is an admin's. */
export const require_admin = (session: AuthSession) =>
  Effect.flatMap(is_admin(session.account_id), (admin) =>
    admin ? Effect.void : Effect.fail(new HttpError({ status: 403, message: "admins only" })),
  )

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
