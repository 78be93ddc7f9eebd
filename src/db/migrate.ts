import type { Effect } from "effect"
import { Database } from "./database.ts"
import type { DbError } from "./errors.ts"

/** Applies the migrations in `drizzle/` that have not run yet, on either driver. */
export const migrate: Effect.Effect<void, DbError, Database> = Database.use((database) => database.migrate)
