import type { AccountIdOf, SessionTable } from "./session-table.js"
import type { auth_session } from "./standalone.js"

/**
 * Where an application declares its session table, once, so that every
 * account id the package takes or returns has its key's type (`number` for a
 * serial key), checked by the compiler:
 *
 * ```ts
 * declare module "effect-session-repo" {
 *   interface Register {
 *     readonly session_table: typeof user_session
 *   }
 * }
 * ```
 *
 * Without it, the standalone `auth_session` (uuid ids as strings) is assumed.
 * `SessionRepo.layer` takes only the registered table, so the declaration
 * and the table the repo runs on cannot disagree.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled in by the application's declaration
export interface Register {}

/** The application's session table: the registered one, or the standalone `auth_session`. */
export type RegisteredSessionTable = Register extends {
  readonly session_table: infer Table extends SessionTable
}
  ? Table
  : typeof auth_session

/** An account id as the registered session table's key holds it. */
export type AccountId = AccountIdOf<RegisteredSessionTable>
