// Checked by `npm run typecheck`, never run: the transaction rule is a compile error.
import { Effect, type Layer } from "effect"
import {
  type CurrentSessionTable,
  Database,
  type Db,
  query_session_enforce_limit,
  query_session_get_valid,
  type SessionPolicy,
} from "../../src/index.ts"

declare const database_layer: Layer.Layer<Database | Db | CurrentSessionTable | SessionPolicy>
declare const account_id: string

// Inside Database.transaction the requirement is met.
export const inside: Effect.Effect<number, unknown, never> = Database.use((database) =>
  database.transaction(query_session_enforce_limit(account_id, 5)),
).pipe(Effect.provide(database_layer))

// A single-statement query needs only Db, which the pool provides.
export const single_statement: Effect.Effect<unknown, unknown, never> = query_session_get_valid("x").pipe(
  Effect.provide(database_layer),
)

// Outside a transaction `Tx` is still required, so this does not compile.
// @ts-expect-error Tx is provided only by Database.transaction
export const outside: Effect.Effect<number, unknown, never> = query_session_enforce_limit(account_id, 5).pipe(
  Effect.provide(database_layer),
)
