// Checked by `npm run typecheck`, never run: a repo without a policy does not compile.
import { Layer } from "effect"
import {
  auth_session,
  type Database,
  type Db,
  layer_session_policy,
  SessionRepo,
  type SessionTouches,
} from "../../src/index.ts"

declare const database_layer: Layer.Layer<Database | Db>

// The policy given to the layer, whichever way it is provided, is the one it reads.
export const provided: Layer.Layer<SessionRepo | SessionTouches, unknown, never> = SessionRepo.layer(
  auth_session,
).pipe(Layer.provide(layer_session_policy({ max_sessions: 1 })), Layer.provide(database_layer))

// Without one, `SessionPolicy` is still required: there is no default to fall back to silently.
// @ts-expect-error SessionPolicy is missing
export const forgotten: Layer.Layer<SessionRepo, unknown, never> = SessionRepo.layer(auth_session).pipe(
  Layer.provide(database_layer),
)
