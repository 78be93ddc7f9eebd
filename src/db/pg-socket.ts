import net from "node:net"

/** The parsed connection options postgres.js hands to a custom `socket` function. */
interface SocketTarget {
  readonly host: ReadonlyArray<string>
  readonly port: ReadonlyArray<number>
  readonly path?: string | false
  readonly ssl?: unknown
}

/**
 * Sockets for postgres.js (its documented `socket` option) that work around
 * two defects of postgres.js 3.4.9, both seen when the server drops every
 * connection under load (test/faults.test.ts):
 *
 * 1. Stranded queries. Node emits a dying socket's 'error' a turn before its
 *    'close'. In between, the pool keeps sending queries down that
 *    connection, and postgres.js fails queued queries on 'close' only when
 *    the close was clean, so those promises never settle: requests hang and
 *    the pool slot is lost. Here 'error' waits for 'close' and both are
 *    delivered together, so every query queued on the connection fails.
 * 2. A startup that is never sent. A connection that dies with a write
 *    still buffered keeps a stale write timer, so the next connection on
 *    that slot never sends its startup message and its query waits for the
 *    whole connect timeout. Such a socket is closed at once instead; the
 *    driver reconnects, keeping its query, and the slot heals once the stale
 *    buffer is flushed (a few quick reconnects; the server rejects the
 *    leftover bytes as a bad startup packet).
 *
 * With TLS, postgres.js wraps the socket in its own TLS socket, whose events
 * these guards cannot reach, so TLS connections get a plain socket.
 */
export const make_guarded_socket = () => {
  let next_host = 0
  return (target: SocketTarget): net.Socket => {
    const index = next_host++ % target.host.length
    const socket = target.path
      ? net.connect(target.path)
      : net.connect(target.port[index] ?? 5432, target.host[index] ?? "localhost")
    if (target.ssl) return socket
    deliver_error_with_close(socket)
    close_if_startup_unsent(socket)
    return socket
  }
}

const deliver_error_with_close = (socket: net.Socket): void => {
  let failure: unknown
  const emit = socket.emit.bind(socket)
  socket.emit = (event: string | symbol, ...args: Array<unknown>): boolean => {
    if (event === "error") {
      failure ??= args[0]
      return true
    }
    if (event === "close" && failure !== undefined) {
      emit("error", failure)
      return emit("close", true)
    }
    return emit(event, ...args)
  }
}

const close_if_startup_unsent = (socket: net.Socket): void => {
  // postgres.js writes the startup message before the TCP connect completes
  // and flushes it on an immediate queued before this one.
  socket.once("connect", () =>
    setImmediate(() => {
      if (socket.bytesWritten === 0 && socket.writableLength === 0) socket.destroy()
    }),
  )
}
