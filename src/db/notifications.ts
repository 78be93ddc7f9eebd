import { Context, type Effect, type Scope } from "effect"
import type { DbError } from "./errors.js"

/** What a listener is told. */
export interface NotificationHandlers {
  /** A notification's payload, as it arrives. */
  readonly payload: (payload: string) => void
  /**
   * The listening connection is up (true) or lost (false). Notifications sent
   * while it was down are lost: what listens must assume it missed some.
   */
  readonly listening: (listening: boolean) => void
}

export interface NotificationsShape {
  /**
   * Listens on `channel` for as long as the scope lives, on a connection of
   * its own (node-postgres) or in process (PGlite), listening again after the
   * connection is lost. Succeeds once notifications are seen to arrive; fails
   * if they do not (a connection through PgBouncer in transaction mode never
   * receives them).
   */
  readonly listen: (
    channel: string,
    handlers: NotificationHandlers,
  ) => Effect.Effect<void, DbError, Scope.Scope>
}

/** PostgreSQL's LISTEN/NOTIFY on the database of the driver layer that provides it. */
export class Notifications extends Context.Service<Notifications, NotificationsShape>()(
  "effect-session-repo/Notifications",
) {}
