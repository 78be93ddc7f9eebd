// The server of npm run bench:http, in a process of its own so that the load
// generator's CPU is not counted in its turn: GET /me behind `with_session`,
// on the database at DATABASE_URL (migrated and seeded by bench/http.ts),
// with the repo cached when BENCH_HTTP_CACHE=1; and GET /answer, the same
// handler's answer with no session (what /me costs less the session). Prints
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

// /me's answer (a generator, a uuid in JSON) without the session
const SOME_ACCOUNT = "00000000-0000-4000-8000-000000000000"
const answer = Effect.gen(function* () {
  const account_id = yield* Effect.succeed(SOME_ACCOUNT)
  return HttpServerResponse.jsonUnsafe({ account_id })
})

// no request log: a line per request would be most of what is measured
const served = HttpRouter.serve(
  Layer.mergeAll(HttpRouter.add("GET", "/me", me), HttpRouter.add("GET", "/answer", answer)),
  { disableLogger: true },
).pipe(
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
