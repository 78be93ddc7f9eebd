import { assert, layer } from "@effect/vitest"
import { generateDrizzleJson, generateMigration } from "drizzle-kit/api"
import { sql } from "drizzle-orm"
import { check, index, integer, pgTable, text, timestamp } from "drizzle-orm/pg-core"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { Db, generate_session_token, hash_session_token, require_fresh_session } from "../src/index.ts"
import { user_session, users } from "./support/app-schema.ts"
import { any_key_repo, backends, on_table, report_skipped_postgres, with_repo } from "./support/backends.ts"
import { on_db } from "./support/fixtures.ts"

// An app that adopted 0.2 with its own users table upgrades: its drizzle-kit
// generates the new columns' migration, which must apply to a table that
// already holds sessions, and those sessions must go on working.

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: "date" })

/** The session table as 0.2's `session_table({ account_id: users.id, name: "user_session" })` defined it. */
const user_session_0_2 = pgTable(
  "user_session",
  {
    id: text("id").primaryKey(),
    account_id: integer("account_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    created_at: timestamptz("created_at").notNull().defaultNow(),
    expires_at: timestamptz("expires_at").notNull(),
    last_seen_at: timestamptz("last_seen_at").notNull().defaultNow(),
  },
  (t) => [
    check("user_session_id_is_hash", sql`${t.id} ~ '^[0-9a-f]{64}$'`),
    index("user_session_account_created_idx").on(t.account_id, t.created_at, t.id),
    index("user_session_expires_at_idx").on(t.expires_at),
    index("user_session_last_seen_at_idx").on(t.last_seen_at),
  ],
)

const before = { users, user_session: user_session_0_2 }
const after = { users, user_session }

const run_statements = (statements: ReadonlyArray<string>) =>
  Db.use((db) =>
    Effect.promise(async () => {
      for (const statement of statements) await db.execute(sql.raw(statement))
    }),
  )

const setup_0_2 = Effect.promise(() =>
  generateMigration(generateDrizzleJson({}), generateDrizzleJson(before)),
).pipe(Effect.flatMap(run_statements))

for (const backend of backends) {
  layer(with_repo(backend.database(), setup_0_2))(
    `upgrading an app's own session table on ${backend.name}`,
    (it) => {
      it.effect("drizzle-kit's migration adds the columns to a table with sessions, which keep working", () =>
        // real time: the database's now() filled the new columns
        TestClock.withLive(
          Effect.gen(function* () {
            const [owner] = yield* on_db((db) =>
              db.insert(users).values({ email: "upgrade@example.com" }).returning({ id: users.id }),
            )
            const token = yield* generate_session_token
            yield* on_db((db) =>
              db.execute(sql`INSERT INTO user_session (id, account_id, expires_at)
            VALUES (${hash_session_token(token)}, ${owner?.id}, now() + interval '20 days')`),
            )
            const upgrade = yield* Effect.promise(() =>
              generateMigration(generateDrizzleJson(before), generateDrizzleJson(after)),
            )
            // the new columns and the check, and the admin list's index moved
            // from last_seen_at to last_seen_hour; nothing else
            assert.lengthOf(upgrade, 8)
            const [adds, others] = [
              upgrade.filter((statement) => statement.startsWith('ALTER TABLE "user_session" ADD')),
              upgrade.filter((statement) => !statement.startsWith('ALTER TABLE "user_session" ADD')),
            ]
            assert.lengthOf(adds, 6)
            assert.deepStrictEqual(others.map((statement) => statement.split(" ON ")[0]).sort(), [
              'CREATE INDEX "user_session_last_seen_hour_idx"',
              'DROP INDEX "user_session_last_seen_at_idx";',
            ])
            yield* run_statements(upgrade)
            yield* Effect.gen(function* () {
              const repo = yield* any_key_repo
              const { session } = yield* repo.authenticate(token)
              // its absolute lifetime counted from the upgrade: 90 days from then
              const now = Date.now()
              assert.approximately(session.absolute_expires_at.getTime(), now + 90 * 86_400_000, 60_000)
              // and not fresh: the migration proves no credential
              assert.strictEqual(session.authenticated_at.getTime(), 0)
              const stale = yield* Effect.flip(require_fresh_session(session, 10 * 60_000))
              assert.strictEqual(stale._tag, "SessionNotFresh")
              assert.deepInclude(session, { client_ip: null, user_agent: null })
              const created = yield* repo.create_session(owner?.id ?? 0, { device: { ip: "192.0.2.1" } })
              assert.strictEqual(created.session.client_ip, "192.0.2.1")
            }).pipe(on_table(user_session))
          }),
        ),
      )
    },
  )
}

report_skipped_postgres("upgrading an app's own session table")
