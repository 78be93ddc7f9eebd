import { createServer } from "node:net"

/** A TCP port free on 127.0.0.1 a moment ago, for a program that cannot pick its own. */
export const free_port = () =>
  new Promise<number>((resolve) => {
    const probe = createServer()
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
