import { randomBytes } from "node:crypto"
import { eq, sql } from "drizzle-orm"
import { pgTable, text } from "drizzle-orm/pg-core"
import { Effect } from "effect"
import { db_query } from "effect-session-repo"

// Keys the app makes for itself, kept in its database: made by whichever
// process starts first, read by every other, so a cookie signed by one
// process is valid at all of them and across restarts. Whoever can read the
// database can read them: they protect nothing the database does not hold.

export const app_secret = pgTable("example_secret", {
  name: text().primaryKey(),
  // base64url of 32 random bytes
  value: text().notNull(),
})

export const create_secret_table = db_query("create_secret_table", (db) =>
  db.execute(sql`CREATE TABLE IF NOT EXISTS example_secret (name text PRIMARY KEY, value text NOT NULL)`),
)

/** The key called `name`: 32 random bytes, made and stored the first time it is asked for. */
export const shared_secret = (name: string) =>
  Effect.gen(function* () {
    // of two processes starting at once, one inserts and both read its key
    yield* db_query("shared_secret", (db) =>
      db
        .insert(app_secret)
        .values({ name, value: randomBytes(32).toString("base64url") })
        .onConflictDoNothing(),
    )
    const [row] = yield* db_query("shared_secret", (db) =>
      db.select().from(app_secret).where(eq(app_secret.name, name)),
    )
    if (row === undefined)
      return yield* Effect.die(new Error(`the secret ${name} is missing after its insert`))
    return Buffer.from(row.value, "base64url")
  })
