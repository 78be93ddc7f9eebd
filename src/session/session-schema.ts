import { Context, Layer } from "effect"
import {
  type SessionTable,
  type SessionTableDefinition,
  session_table_definition,
} from "../schema/session-table.js"
import { auth_session } from "../schema/standalone.js"

const definition_of = (table: SessionTable): SessionTableDefinition => {
  const definition = session_table_definition(table)
  if (definition === undefined)
    throw new Error("layer_session_table: the table was not made by session_table")
  return definition
}

/**
 * The session table the queries run on: the standalone `auth_session` (over the
 * library's `account` table) unless `layer_session_table` provides another.
 */
export const SessionSchema = Context.Reference<SessionTableDefinition>("effect-session-repo/SessionSchema", {
  defaultValue: () => definition_of(auth_session),
})

/** Runs the session queries (and `SessionRepo`) on `table`, made by `session_table` over your account table. */
export const layer_session_table = (table: SessionTable): Layer.Layer<never> =>
  Layer.succeed(SessionSchema, definition_of(table))
