import { Context, Layer } from "effect"
import type { RegisteredSessionTable } from "../schema/register.js"
import {
  type SessionTable,
  type SessionTableDefinition,
  session_table_definition,
} from "../schema/session-table.js"

/** The definition `session_table` attached to `table`; a table made otherwise is a defect. */
export const definition_of = (table: SessionTable): SessionTableDefinition => {
  const definition = session_table_definition(table)
  if (definition === undefined) throw new Error("the session table was not made by session_table")
  return definition
}

/**
 * The session table the query functions run on, with what they need to know
 * of its account table. `SessionRepo.layer(table)` provides it; so does
 * `layer_current_session_table(table)` for the query functions alone.
 */
export class CurrentSessionTable extends Context.Service<CurrentSessionTable, SessionTableDefinition>()(
  "effect-session-repo/CurrentSessionTable",
) {}

/** Runs the query functions on `table` (your registered session table, or `auth_session`). */
export const layer_current_session_table = (
  table: RegisteredSessionTable,
): Layer.Layer<CurrentSessionTable> => Layer.succeed(CurrentSessionTable, definition_of(table))
