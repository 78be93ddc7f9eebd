// The README's standalone snippet; compiled by `npm run typecheck`.
import { Effect, Layer } from "effect"
import { layer_postgres_from_config, migrate, SessionRepo } from "effect-session-repo"

const SessionsLive = SessionRepo.layer.pipe(Layer.provideMerge(layer_postgres_from_config))
export const setup = migrate.pipe(Effect.provide(SessionsLive)) // or: npx effect-session-repo migrate
