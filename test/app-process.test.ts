import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { free_port } from "./support/free-port.ts"

// `npm start` as people run it: the example app in a process of its own, on
// embedded PGlite, its log read from stdout.

/**
 * One request with a deadline: the status, "refused" (nobody listening yet),
 * "hung", or "no headers" (an answer without the app's security headers).
 */
const probe = (port: number, timeout_ms: number) =>
  new Promise<number | "refused" | "hung" | string>((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/api/me", timeout: timeout_ms }, (response) => {
      response.resume()
      const headed = response.headers["content-security-policy"] !== undefined
      resolve(headed ? (response.statusCode ?? "no status") : "no headers")
    })
    req.on("timeout", () => {
      req.destroy()
      resolve("hung")
    })
    req.on("error", (error: NodeJS.ErrnoException) =>
      resolve(error.code === "ECONNREFUSED" ? "refused" : (error.code ?? String(error))),
    )
    req.end()
  })

const wait_for = async (condition: () => boolean, what: string, timeout_ms = 60_000) => {
  const deadline = Date.now() + timeout_ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe("the example app as a process (npm start)", () => {
  let child: ChildProcess
  let port: number
  let data_dir: string
  let output = ""
  const probes: Array<Promise<number | string>> = []

  beforeAll(async () => {
    port = await free_port()
    data_dir = mkdtempSync(join(tmpdir(), "esr-app-"))
    // the defaults, but for the port and the data directory
    const { DATABASE_URL: _, HOST: __, APP_ORIGIN: ___, COOKIE_SECURE: ____, ...inherited } = process.env
    child = spawn(process.execPath, ["--import", "tsx", "examples/app/main.ts"], {
      env: { ...inherited, DATA_DIR: data_dir, PORT: String(port), ADMIN_USERNAMES: "nobody-yet" },
      stdio: ["ignore", "pipe", "pipe"],
    })
    child.stdout?.on("data", (chunk) => {
      output += chunk
    })
    child.stderr?.on("data", (chunk) => {
      output += chunk
    })
    // a request every 25 ms from the moment the process starts until well after it listens
    let listening_at: number | undefined
    const started = Date.now()
    while (listening_at === undefined || Date.now() - listening_at < 1500) {
      probes.push(probe(port, 5000))
      if (listening_at === undefined && /Listening on/.test(output)) listening_at = Date.now()
      if (Date.now() - started > 90_000) throw new Error(`the app did not start:\n${output}`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }, 120_000)

  afterAll(async () => {
    child?.kill("SIGTERM")
    await wait_for(() => child.exitCode !== null || child.signalCode !== null, "the app to exit", 15_000)
    rmSync(data_dir, { recursive: true, force: true })
  })

  it("every request sent during startup is refused at once or answered; none hangs", async () => {
    const outcomes = await Promise.all(probes)
    const counts = new Map<string, number>()
    for (const outcome of outcomes) counts.set(String(outcome), (counts.get(String(outcome)) ?? 0) + 1)
    console.log(`startup probes: ${JSON.stringify(Object.fromEntries(counts))}`)
    assert.deepStrictEqual(
      outcomes.filter((outcome) => outcome !== "refused" && outcome !== 401 && outcome !== 503),
      [],
    )
    assert.isAbove(counts.get("401") ?? 0, 0, "no request was served after startup")
  })

  it("listens on 127.0.0.1 only, and warns about an admin name nobody has registered", () => {
    assert.match(output, new RegExp(`Listening on http://127\\.0\\.0\\.1:${port}`))
    assert.match(output, /ADMIN_USERNAMES names "nobody-yet"/)
  })

  it("the request log shows session ids by their prefix and never a token in a path", async () => {
    const base = `http://127.0.0.1:${port}`
    const signup = await fetch(`${base}/api/signup`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "logger", password: "a password to sign in with" }),
    })
    const cookie = (signup.headers.get("set-cookie") ?? "").split(";")[0] ?? ""
    const token = cookie.split("=")[1] ?? ""
    const { session } = (await signup.json()) as { session: { id: string } }
    const revoke = await fetch(`${base}/api/sessions/${session.id}`, {
      method: "DELETE",
      headers: { cookie },
    })
    assert.strictEqual(revoke.status, 200)
    await fetch(`${base}/api/sessions/${token}`, { method: "DELETE" })
    await fetch(`${base}/api/me?token=${token}`)
    // the token anywhere in a path, or in a header
    for (const path of [`/x;${token}`, `/${token},x`, `/x:${token}`, `/a=${token}`]) await fetch(base + path)
    await fetch(`${base}/api/me`, {
      headers: { "user-agent": token, referer: `${base}/${token}`, "x-forwarded-for": token, cookie },
    })
    await wait_for(() => output.includes(`${session.id.slice(0, 8)}…`), "the request log line")
    assert.notInclude(output, session.id)
    assert.notInclude(output, token)
    assert.notMatch(output, /[0-9a-f]{64}/)
  })
})
