import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { CurrentSession, with_session } from "effect-session-repo/http"
import { is_admin } from "./admins.ts"
import { is_local_client } from "./client-address.ts"
import { as_json_errors } from "./http-error.ts"

// GET /metrics: the process's metrics (the library's among them) for
// Prometheus. They tell how many people sign in and fail to, so only a
// scraper on this machine (a loopback client, ./client-address.ts) or a
// signed-in admin gets them. Anyone else gets the 404 of a path that does not
// exist: a scanner learns nothing.

const not_found = HttpServerResponse.jsonUnsafe({ error: "not found" }, { status: 404 })

const prometheus_text = Effect.map(PrometheusMetrics.format(), (body) =>
  HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" }),
)

// with_session answers 401 itself when no valid session comes with the request
const for_admins = with_session(
  Effect.gen(function* () {
    const { session } = yield* CurrentSession
    return (yield* is_admin(session.account_id)) ? yield* prometheus_text : not_found
  }),
).pipe(Effect.map((response) => (response.status === 401 ? not_found : response)))

const metrics = Effect.flatMap(is_local_client, (local) => (local ? prometheus_text : for_admins))

export const MetricsRoute = HttpRouter.add("GET", "/metrics", as_json_errors(metrics))
