// The server of npm run bench:http, in a process of its own so that the load
// generator's CPU is not counted in its turn: one route, GET /me behind
// `with_session`, on the database at DATABASE_URL (migrated and seeded by
// bench/http.ts), with the repo cached when BENCH_HTTP_CACHE=1. Prints
// {"port":N} on stdout once it serves; SIGTERM stops it and closes the pool.
import { createServer } from "node:http"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Redacted } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { cached_repo_on, repo_on } from "./harness.ts"
import { CurrentSession, layer_postgres, with_session } from "./package.ts"

const url = process.env.DATABASE_URL
if (url === undefined) throw new Error("bench/http-server.ts needs DATABASE_URL")
const database = layer_postgres({ url: Redacted.make(url), pool_size: 10 })
const sessions = process.env.BENCH_HTTP_CACHE === "1" ? cached_repo_on(database) : repo_on(database)

// the smallest authenticated answer: what is left is the session's cost
const me = with_session(
  Effect.gen(function* () {
    const { session } = yield* CurrentSession
    return HttpServerResponse.jsonUnsafe({ account_id: session.account_id })
  }),
)

// no request log: a line per request would be most of what is measured
const served = HttpRouter.serve(HttpRouter.add("GET", "/me", me), { disableLogger: true }).pipe(
  Layer.provide(sessions),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
)

// built after `served`, so the port is announced once requests are answered
const announce = Layer.effectDiscard(
  Effect.gen(function* () {
    const address = (yield* HttpServer.HttpServer).address
    console.log(JSON.stringify({ port: "port" in address ? address.port : 0 }))
  }),
).pipe(Layer.provide(served))

Layer.launch(announce).pipe(NodeRuntime.runMain)
