// The README's usage snippet; compiled by `npm run typecheck`.
import { Effect, Layer, Option, Redacted } from "effect"
import { layer_postgres_from_config, migrate, SessionRepo } from "effect-session-repo"

// DATABASE_URL (and optionally DATABASE_POOL_SIZE, DATABASE_PREPARE) come from the environment.
const SessionsLive = SessionRepo.layer.pipe(Layer.provideMerge(layer_postgres_from_config))

const login = (account_id: string) =>
  Effect.gen(function* () {
    const sessions = yield* SessionRepo
    // one transaction: insert, lock the account row, evict past 5 sessions
    const { token, session } = yield* sessions.create_session(account_id)
    return { cookie: token, expires_at: session.expires_at }
  })

const authenticate = (cookie: string) =>
  Effect.gen(function* () {
    const sessions = yield* SessionRepo
    // one read; last_seen_at / expiry are written in the background, at most once a minute
    const session = yield* sessions.validate(cookie)
    return Option.map(session, (s) => s.account_id)
  })

export const program = Effect.gen(function* () {
  yield* migrate
  const { cookie } = yield* login("0b6f1c1e-7d4f-4a53-9a8e-6d2b1f0c9e11")
  // the token is Redacted so it cannot be logged by accident; unwrap it only for Set-Cookie
  return yield* authenticate(Redacted.value(cookie))
}).pipe(Effect.provide(SessionsLive))
