import type { Effect } from "effect"
import { Database } from "./database.js"
import type { DbError } from "./errors.js"

/** Applies the migrations in `drizzle/` that have not run yet, on either driver. */
export const migrate: Effect.Effect<void, DbError, Database> = Database.use((database) => database.migrate)
