import { existsSync, mkdirSync } from "node:fs"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { type Browser, chromium } from "playwright-core"
import { example_app } from "./support/app.ts"

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const ARTIFACTS = new URL("../test-artifacts/", import.meta.url).pathname

if (!existsSync(CHROMIUM) && process.env.REQUIRE_BROWSER === "1") {
  throw new Error(`REQUIRE_BROWSER=1 but there is no Chromium at ${CHROMIUM}`)
}
if (!existsSync(CHROMIUM))
  console.warn(`[browser] SKIPPED: no Chromium at ${CHROMIUM} (apt-get install chromium)`)

describe.skipIf(!existsSync(CHROMIUM))("the example page in headless Chromium", () => {
  let scope: Scope.Closeable
  let base: string
  let browser: Browser

  beforeAll(async () => {
    scope = await Effect.runPromise(Scope.make())
    const services = await Effect.runPromise(Layer.buildWithScope(example_app("pglite"), scope))
    const address = Context.get(services, HttpServer.HttpServer).address as { readonly port?: number }
    base = `http://127.0.0.1:${address.port}`
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    })
  })

  afterAll(async () => {
    await browser?.close()
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("signs up, sees two sessions, revokes the other one", async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(base)
    await page.fill("input[name=username]", "browser-user")
    await page.fill("input[name=password]", "browser password")
    await page.click("button[data-action=signup]")
    await page.waitForSelector("#signed-in:not([hidden])")
    assert.strictEqual(await page.textContent("#username"), "browser-user")

    // the cookie is out of the page's reach
    const [cookie] = await context.cookies()
    assert.strictEqual(cookie?.name, "session")
    assert.isTrue(cookie?.httpOnly)
    assert.strictEqual(cookie?.sameSite, "Lax")
    assert.strictEqual(await page.evaluate("document.cookie"), "")

    // a second device signs in
    const login = await fetch(`${base}/api/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "browser-user", password: "browser password" }),
    })
    const other_cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] ?? ""
    await page.reload()
    await page.waitForFunction("document.querySelectorAll('#sessions tr').length === 2")

    // revoke it from the page
    await page.click("#sessions tr:not(:has(.current)) button")
    await page.waitForFunction("document.querySelectorAll('#sessions tr').length === 1")
    assert.strictEqual(await page.textContent("#message"), "Session revoked.")
    const other = await fetch(`${base}/api/me`, { headers: { cookie: other_cookie } })
    assert.strictEqual(other.status, 401)

    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: `${ARTIFACTS}browser-sessions.png`, fullPage: true })
    assert.isTrue(existsSync(`${ARTIFACTS}browser-sessions.png`))
    await context.close()
  })
})
