// The README's usage on your own table; compiled by `npm run typecheck`.
import { Effect, Layer, Option, Redacted } from "effect"
import { layer_postgres_from_config, SessionRepo } from "effect-session-repo"
import { user_session } from "./schema.ts"

// SessionRepo on your session table; DATABASE_URL (and DATABASE_POOL_SIZE, …) from the environment
export const SessionsLive = SessionRepo.layer_for(user_session).pipe(
  Layer.provideMerge(layer_postgres_from_config),
)

// account ids have your key's type: a number for a serial key
export const login = (user_id: number) =>
  Effect.gen(function* () {
    const sessions = yield* SessionRepo
    // one transaction: insert, lock your users row, evict past 5 sessions
    const { token, session } = yield* sessions.create_session(user_id)
    // the token is Redacted so it cannot be logged by accident; unwrap it only for Set-Cookie
    return { cookie: Redacted.value(token), expires_at: session.expires_at }
  })

export const authenticate = (cookie: string) =>
  Effect.gen(function* () {
    const sessions = yield* SessionRepo
    // one read; last_seen_at is written in the background at most once a minute, an extension before returning
    const session = yield* sessions.validate(cookie)
    return Option.map(session, (s) => s.account_id)
  })
