import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { free_port } from "./free-port.ts"

// A real reverse proxy in front of the example app: Debian's nginx
// (`apt-get install nginx`), started by the test on loopback addresses only.

export const NGINX = process.env.NGINX_PATH ?? "/usr/sbin/nginx"

/** Whether nginx is installed; `REQUIRE_PROXY=1` (set by CI) makes its absence a failure. */
export const nginx_available = existsSync(NGINX)

// One process (no workers to hunt down), logs to stderr, every file in `dir`.
// X-Forwarded-For as nginx's documentation sets it: the client's header with
// the address nginx got the request from appended.
const nginx_conf = (dir: string, port: number, upstream_port: number, bind: string) => `
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${upstream_port};
      proxy_bind ${bind};
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`

const accepts_connections = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1")
    socket.on("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.on("error", () => resolve(false))
  })

const started = async (child: ChildProcess, port: number, output: () => string) => {
  const deadline = Date.now() + 10_000
  while (!(await accepts_connections(port))) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}:\n${output()}`)
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port}:\n${output()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const stopped = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGTERM")
  })

/**
 * nginx on 127.0.0.1 in front of the app listening at `upstream_port`, whose
 * connections to the app come from the loopback address `bind` (so the app
 * can tell them from a client's); its port. Stopped when the scope closes.
 */
export const reverse_proxy = (upstream_port: number, bind: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = mkdtempSync(join(tmpdir(), "esr-nginx-"))
      const port = await free_port()
      writeFileSync(join(dir, "nginx.conf"), nginx_conf(dir, port, upstream_port, bind))
      const child = spawn(NGINX, ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", "stderr"], {
        stdio: ["ignore", "ignore", "pipe"],
      })
      let output = ""
      child.stderr?.on("data", (chunk) => {
        output += chunk
      })
      await started(child, port, () => output).catch(async (error) => {
        await stopped(child)
        throw error
      })
      return { child, dir, port }
    }),
    ({ child, dir }) =>
      Effect.promise(() => stopped(child)).pipe(
        Effect.andThen(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))),
      ),
  ).pipe(Effect.map(({ port }) => port))
