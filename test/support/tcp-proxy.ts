import { createServer, type Server, Socket } from "node:net"
import { Effect } from "effect"

/** The first 8 bytes of PostgreSQL's SSLRequest. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])

export interface TcpProxy {
  readonly port: number
  /** Connections it took. */
  readonly connections: () => number
  /** Those that began with an SSLRequest. */
  readonly ssl_requests: () => number
  /** Stops taking connections and cuts those it holds. */
  readonly close: () => void
}

/** A TCP proxy on loopback to `target`, counting what it took, until closed (it then refuses); closed with the scope. */
export const tcp_proxy = (target: { host: string; port: number }) =>
  Effect.acquireRelease(
    Effect.callback<TcpProxy>((resume) => {
      let connections = 0
      let ssl_requests = 0
      const sockets = new Set<Socket>()
      const server: Server = createServer((inbound) => {
        connections++
        inbound.once("data", (first: Buffer) => {
          if (first.subarray(0, 8).equals(SSL_REQUEST)) ssl_requests++
        })
        const outbound = new Socket()
        outbound.connect(target.port, target.host)
        for (const socket of [inbound, outbound]) {
          sockets.add(socket)
          socket.on("error", () => {})
          socket.on("close", () => {
            sockets.delete(socket)
            inbound.destroy()
            outbound.destroy()
          })
        }
        inbound.pipe(outbound).pipe(inbound)
      })
      server.listen(0, "127.0.0.1", () =>
        resume(
          Effect.succeed({
            port: (server.address() as { port: number }).port,
            connections: () => connections,
            ssl_requests: () => ssl_requests,
            close: () => {
              server.close()
              for (const socket of sockets) socket.destroy()
            },
          }),
        ),
      )
    }),
    (proxy) => Effect.sync(proxy.close),
  )
