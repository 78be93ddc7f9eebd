import { Clock, Effect } from "effect"
import type { AnyAccountId, AuthSession } from "../schema/session-table.js"
import { SessionNotFresh } from "./errors.js"

/**
 * Succeeds when the session's user proved a credential (signed in, or
 * `SessionRepo.reauthenticate`) at most `max_age_ms` ago; else
 * `SessionNotFresh`: ask for the password again before a sensitive operation
 * (a password or email change, signing out other devices).
 */
export const require_fresh_session = (
  session: AuthSession<AnyAccountId>,
  max_age_ms: number,
): Effect.Effect<void, SessionNotFresh> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    now - session.authenticated_at.getTime() <= max_age_ms
      ? Effect.void
      : Effect.fail(
          new SessionNotFresh({
            authenticated_at: session.authenticated_at,
            max_age_ms,
            message: "this operation needs the credential proven again",
          }),
        ),
  )
