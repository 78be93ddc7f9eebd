// The README's "your own server" snippet; compiled by `npm run typecheck`.
import { createServer } from "node:http"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { layer_postgres_from_config, SessionRepo } from "effect-session-repo"
import { CurrentSession, with_session } from "effect-session-repo/http"

// A route behind the session: 401 without a valid cookie; the cookie is
// re-sent whenever validation extends the session.
const Me = HttpRouter.add(
  "GET",
  "/me",
  with_session(
    Effect.gen(function* () {
      const { session } = yield* CurrentSession
      return HttpServerResponse.jsonUnsafe({ account_id: session.account_id, expires_at: session.expires_at })
    }),
  ).pipe(
    Effect.catchTag("DbError", () =>
      Effect.succeed(HttpServerResponse.jsonUnsafe({ error: "try again" }, { status: 503 })),
    ),
  ),
)

// The cookie is `Secure` by default; provide `SessionCookie` to change that.
HttpRouter.serve(Me).pipe(
  Layer.provide(SessionRepo.layer.pipe(Layer.provideMerge(layer_postgres_from_config))),
  Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 })),
  Layer.launch,
  NodeRuntime.runMain,
)
