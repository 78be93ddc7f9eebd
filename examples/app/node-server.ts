import { createServer, type Server } from "node:http"

// Effect's NodeHttpServer starts listening when its layer is built and
// attaches the app's request handler when the routes are served, a moment
// later (and detaches it first on shutdown). A request arriving between the
// two would wait forever: Node answers nothing without a handler. This
// server's first handler answers 503 whenever it is the only one.

/** A Node HTTP server that answers 503 (retry in a second) while no app handler is attached. */
export const create_guarded_server = (): Server => {
  const server = createServer()
  server.on("request", (_request, response) => {
    if (server.listenerCount("request") > 1) return
    response.writeHead(503, {
      "content-type": "application/json",
      "retry-after": "1",
      "cache-control": "no-store",
    })
    response.end(JSON.stringify({ error: "starting or stopping; try again" }))
  })
  return server
}
