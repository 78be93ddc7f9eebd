import { Effect } from "effect"
import { Db, DbError } from "effect-session-repo"

/** One Drizzle call on the current handle (the pool, or the transaction), its failure a `DbError` named `operation`. */
export const query = <A>(operation: string, f: (db: Db["Service"]) => Promise<A>) =>
  Db.use((db) => Effect.tryPromise({ try: () => f(db), catch: (error) => DbError.from(operation, error) }))
