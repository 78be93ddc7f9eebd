import { inArray } from "drizzle-orm"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { account, db_query, SessionAuditLog } from "effect-session-repo"
import { CurrentSession, with_session } from "effect-session-repo/http"
import { activity_view, audit_view } from "./activity-view.ts"
import { require_admin } from "./admins.ts"
import { as_json_errors } from "./http-error.ts"

// What happened to sessions, from the library's audit table: the user's own
// account's, and every account's for an admin.

/** Entries the user's page shows, and the admin's. */
const ACTIVITY_ENTRIES = 20
const AUDIT_ENTRIES = 100

const my_activity = with_session(
  Effect.gen(function* () {
    const { session } = yield* CurrentSession
    const entries = yield* (yield* SessionAuditLog).for_account(session.account_id, {
      limit: ACTIVITY_ENTRIES,
    })
    return HttpServerResponse.jsonUnsafe({ activity: entries.map(activity_view) })
  }),
)

/** The usernames of `ids`, in one query: a deleted account has none. */
const usernames_of = (ids: ReadonlyArray<string>) =>
  ids.length === 0
    ? Effect.succeed(new Map<string, string>())
    : db_query("audit_usernames", (db) =>
        db
          .select({ id: account.id, username: account.username })
          .from(account)
          .where(inArray(account.id, [...ids])),
      ).pipe(Effect.map((rows) => new Map(rows.map((row) => [row.id, row.username]))))

const admin_audit = with_session(
  Effect.gen(function* () {
    yield* require_admin((yield* CurrentSession).session)
    const entries = yield* (yield* SessionAuditLog).recent({ limit: AUDIT_ENTRIES })
    const ids = new Set(entries.flatMap(({ event }) => ("account_id" in event ? [event.account_id] : [])))
    const usernames = yield* usernames_of([...ids])
    return HttpServerResponse.jsonUnsafe({ entries: entries.map((entry) => audit_view(entry, usernames)) })
  }),
)

export const ActivityRoutes = Layer.mergeAll(
  HttpRouter.add("GET", "/api/activity", as_json_errors(my_activity)),
  HttpRouter.add("GET", "/api/admin/audit", as_json_errors(admin_audit)),
)
