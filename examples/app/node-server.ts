import { createServer, type Server, STATUS_CODES } from "node:http"
import type { Duplex } from "node:stream"

// Effect's NodeHttpServer starts listening when its layer is built and
// attaches the app's request handler when the routes are served, a moment
// later (and detaches it first on shutdown). A request arriving between the
// two would wait forever: Node answers nothing without a handler. This
// server's first handler answers 503 whenever it is the only one.
//
// Node also answers by itself a request it cannot parse (a header block over
// its limit: 431; a malformed request line: 400), bare. Here those answers
// carry the app's headers and a JSON error like every other one.

const json_body = (status: number) =>
  JSON.stringify({ error: (STATUS_CODES[status] ?? "error").toLowerCase() })

/** Node's status for a request it could not parse, as its own default handler picks it. */
const client_error_status = (code: string | undefined): number => {
  if (code === "HPE_HEADER_OVERFLOW") return 431
  if (code === "HPE_CHUNK_EXTENSIONS_OVERFLOW") return 413
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") return 408
  return 400
}

/** A whole HTTP/1.1 response with `headers` and a JSON error, closing the connection. */
const raw_response = (status: number, headers: Record<string, string>): string => {
  const body = json_body(status)
  const all = {
    ...headers,
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
    connection: "close",
  }
  const lines = Object.entries(all).map(([name, value]) => `${name}: ${value}\r\n`)
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${lines.join("")}\r\n${body}`
}

/**
 * A Node HTTP server that answers 503 (retry in a second) while no app
 * handler is attached, and answers unparsable requests itself; `headers` on
 * both (./security-headers.ts).
 */
export const create_guarded_server = (headers: Record<string, string>): Server => {
  const server = createServer()
  server.on("request", (_request, response) => {
    if (server.listenerCount("request") > 1) return
    response.writeHead(503, { ...headers, "content-type": "application/json", "retry-after": "1" })
    response.end(JSON.stringify({ error: "starting or stopping; try again" }))
  })
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex & { bytesWritten?: number }) => {
    // a response already begun, or a peer gone: nothing more can be said
    if (error.code === "ECONNRESET" || !socket.writable || (socket.bytesWritten ?? 0) > 0) {
      socket.destroy()
      return
    }
    socket.end(raw_response(client_error_status(error.code), headers))
  })
  return server
}
