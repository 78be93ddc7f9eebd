import { existsSync, mkdirSync } from "node:fs"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { type Browser, chromium, type Page } from "playwright-core"
import { Db } from "../src/index.ts"
import { DEVICES, example_app, password_proven_ago, password_set_before_the_rules } from "./support/app.ts"

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const ARTIFACTS = new URL("../test-artifacts/", import.meta.url).pathname

if (!existsSync(CHROMIUM) && process.env.REQUIRE_BROWSER === "1") {
  throw new Error(`REQUIRE_BROWSER=1 but there is no Chromium at ${CHROMIUM}`)
}
if (!existsSync(CHROMIUM))
  console.warn(`[browser] SKIPPED: no Chromium at ${CHROMIUM} (apt-get install chromium)`)

/**
 * Waits until the table body `rows` (the session table's by default) has
 * `count` rows. Polled from here: the page's Content-Security-Policy forbids
 * the eval behind a string waitForFunction.
 */
const rows_shown = async (page: Page, count: number, rows = "#sessions tr") => {
  for (let attempt = 0; attempt < 200; attempt++) {
    if ((await page.locator(rows).count()) === count) return
    await page.waitForTimeout(25)
  }
  throw new Error(`${rows} never showed ${count} rows`)
}

/** The texts of column `column` (1-based) of the table body `tbody`, top to bottom. */
const column_texts = (page: Page, tbody: string, column: number) =>
  page.locator(`${tbody} tr td:nth-child(${column})`).allTextContents()

describe.skipIf(!existsSync(CHROMIUM))("the example page in headless Chromium", () => {
  let scope: Scope.Closeable
  let base: string
  let db: Db["Service"]
  let browser: Browser

  beforeAll(async () => {
    scope = await Effect.runPromise(Scope.make())
    const services = await Effect.runPromise(Layer.buildWithScope(example_app("pglite"), scope))
    const address = Context.get(services, HttpServer.HttpServer).address as { readonly port?: number }
    db = Context.get(services, Db)
    // the quick start's URL: Secure __Host- cookies work on http://localhost
    base = `http://localhost:${address.port}`
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

  it("signs up, sees its devices, revokes one, confirms the password to sign out the rest", async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    // anything the Content-Security-Policy blocked, and any script error
    const blocked: Array<string> = []
    page.on("console", (message) => {
      if (/Content.Security.Policy|Refused to/i.test(message.text())) blocked.push(message.text())
    })
    page.on("pageerror", (error) => blocked.push(String(error)))
    const response = await page.goto(base)
    assert.match(response?.headers()["content-security-policy"] ?? "", /script-src 'self'/)
    assert.notInclude(response?.headers()["content-security-policy"] ?? "", "unsafe-inline")
    await page.fill("input[name=username]", "browser-user")
    await page.fill("input[name=password]", "browser password")
    await page.click("button[data-action=signup]")
    await page.waitForSelector("#signed-in:not([hidden])")
    assert.strictEqual(await page.textContent("#username"), "browser-user")

    // the cookies are out of the page's reach; the device cookie goes with the app's own requests only
    const cookies = await context.cookies()
    const cookie = cookies.find((c) => c.name === "__Host-session")
    assert.isTrue(cookie?.secure)
    assert.isTrue(cookie?.httpOnly)
    assert.strictEqual(cookie?.sameSite, "Lax")
    const device = cookies.find((c) => c.name === "__Host-device")
    assert.isTrue(device?.secure)
    assert.isTrue(device?.httpOnly)
    assert.strictEqual(device?.sameSite, "Strict")
    assert.strictEqual(cookies.length, 2)
    assert.strictEqual(await page.evaluate("document.cookie"), "")

    // two other devices sign in
    const sign_in = async (user_agent: string) => {
      const login = await fetch(`${base}/api/login`, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": user_agent },
        body: JSON.stringify({ username: "browser-user", password: "browser password" }),
      })
      return (login.headers.get("set-cookie") ?? "").split(";")[0] ?? ""
    }
    const { firefox_on_windows: firefox, safari_on_iphone: safari } = DEVICES
    const firefox_cookie = await sign_in(firefox.user_agent)
    const safari_cookie = await sign_in(safari.user_agent)
    await page.reload()
    await rows_shown(page, 3)

    // the device table: browser, OS, IP address, created, last active, marker
    const rows = await Promise.all(
      (await page.locator("#sessions tr").all()).map((row) => row.locator("td").allTextContents()),
    )
    const this_device = rows.find((cells) => cells[5] === "this device")
    // Chromium's own User-Agent (HeadlessChrome on Linux), as bowser reads it
    assert.match(this_device?.[0] ?? "", /^Chrome \d+$/)
    assert.strictEqual(this_device?.[1], "Linux")
    assert.strictEqual(this_device?.[2], "127.0.0.1")
    assert.sameDeepMembers(
      rows.map((cells) => cells.slice(0, 3)),
      [
        [this_device?.[0], "Linux", "127.0.0.1"],
        [firefox.browser, firefox.os, "127.0.0.1"],
        [safari.browser, safari.os, "127.0.0.1"],
      ],
    )
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: `${ARTIFACTS}browser-sessions.png`, fullPage: true })
    assert.isTrue(existsSync(`${ARTIFACTS}browser-sessions.png`))

    // revoke the Firefox session from the page
    await page.click(`#sessions tr:has(td:text-is("${firefox.browser}")) button`)
    await rows_shown(page, 2)
    assert.strictEqual(await page.textContent("#message"), "Session revoked.")
    const revoked = await fetch(`${base}/api/me`, { headers: { cookie: firefox_cookie } })
    assert.strictEqual(revoked.status, 401)

    // the password was proven 11 minutes ago: signing out everywhere else asks for it first
    const session_id = (await page.getAttribute("#sessions tr:has(.current)", "data-session")) ?? ""
    await Effect.runPromise(password_proven_ago(session_id, 11).pipe(Effect.provideService(Db, db)))
    await page.click("#revoke-others")
    await page.waitForSelector("#reauth-form:not([hidden])")
    assert.strictEqual(await page.textContent("#message"), "confirm your password first")
    await page.screenshot({ path: `${ARTIFACTS}browser-reauthenticate.png`, fullPage: true })
    await page.fill("#reauth-form input[name=password]", "browser password")
    await page.click("#reauth-form button")
    await rows_shown(page, 1)
    assert.strictEqual(await page.textContent("#message"), "1 other session(s) signed out.")
    assert.isTrue(await page.isHidden("#reauth-form"))
    const signed_out = await fetch(`${base}/api/me`, { headers: { cookie: safari_cookie } })
    assert.strictEqual(signed_out.status, 401)

    // what happened, newest first, in words: the password proof renewed this session's token
    await rows_shown(page, 7, "#activity tr")
    const chrome = `${this_device?.[0]} on Linux (127.0.0.1)`
    assert.deepStrictEqual(await column_texts(page, "#activity", 2), [
      "Signed out elsewhere (1 session)",
      `Session given a new key: ${chrome}`,
      `Password confirmed: ${chrome}`,
      `Signed out from the session list: ${firefox.browser} on ${firefox.os} (127.0.0.1)`,
      `New sign-in from ${safari.browser} on ${safari.os} (127.0.0.1)`,
      `New sign-in from ${firefox.browser} on ${firefox.os} (127.0.0.1)`,
      `New sign-in from ${chrome}`,
    ])
    for (const shown of await column_texts(page, "#activity", 1))
      assert.isFalse(Number.isNaN(Date.parse(shown)))
    assert.isTrue(await page.isHidden("#admin"))
    await page.screenshot({ path: `${ARTIFACTS}browser-activity.png`, fullPage: true })
    await context.close()
    assert.deepStrictEqual(blocked, [], "the policy blocked part of the page, or its script failed")
  })

  it("shows the password rule before sign-up, and asks for a new password after a login with a weak one", async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(base)
    assert.isTrue(await page.isVisible("#signup-rule"))
    assert.include((await page.textContent("#signup-rule")) ?? "", "At least 15 characters")
    await page.fill("input[name=username]", "weak-user")
    await page.fill("input[name=password]", "password")
    await page.click("button[data-action=signup]")
    await page.waitForSelector("#message:text-matches('too short')")

    // an account whose password was set before the rules
    const signup = await fetch(`${base}/api/signup`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "weak-user", password: "placeholder password" }),
    })
    const { account } = (await signup.json()) as { account: { id: string } }
    await Effect.runPromise(
      password_set_before_the_rules(account.id, "baseball").pipe(Effect.provideService(Db, db)),
    )
    await page.fill("input[name=password]", "baseball")
    await page.click("button[data-action=login]")
    await page.waitForSelector("#password-change-required:not([hidden])")
    assert.match(
      (await page.textContent("#password-change-required")) ?? "",
      /too short.*choose a new password/,
    )
    assert.strictEqual(await page.evaluate("document.activeElement.name"), "current_password")
    await page.screenshot({ path: `${ARTIFACTS}browser-password-change-required.png`, fullPage: true })
    await page.fill("#password-form input[name=current_password]", "baseball")
    await page.fill("#password-form input[name=new_password]", "a better one at last")
    await page.click("#password-form button")
    await page.waitForSelector("#message:text-matches('Password changed')")
    assert.isTrue(await page.isHidden("#password-change-required"))
    await context.close()
  })

  it("an admin sees the audit log and signs a user out everywhere", async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    const blocked: Array<string> = []
    page.on("console", (message) => {
      if (/Content.Security.Policy|Refused to/i.test(message.text())) blocked.push(message.text())
    })
    page.on("pageerror", (error) => blocked.push(String(error)))
    // a user with a session of their own, signed in elsewhere
    await fetch(`${base}/api/signup`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "audited-user", password: "watched by the admin" }),
    })
    await page.goto(base)
    await page.fill("input[name=username]", "admin")
    await page.fill("input[name=password]", "the keys to the audit log")
    await page.click("button[data-action=signup]")
    await page.waitForSelector("#admin:not([hidden])")
    await page.waitForSelector('#audit tr td:text-is("audited-user")')
    assert.strictEqual((await column_texts(page, "#audit", 2))[0], "admin")
    assert.strictEqual((await column_texts(page, "#audit", 3))[0], "created")

    // signing out everywhere: the admin's password was proven at sign-up a moment ago
    await page.click('#all-sessions tr:has(td:text-is("audited-user")) button')
    await page.waitForSelector("#message:text-is('1 session(s) of audited-user signed out.')")
    await page.waitForSelector('#audit tr:first-child td:text-is("revoked_all")')
    const newest = await page.locator("#audit tr:first-child td").allTextContents()
    assert.deepStrictEqual(newest.slice(1, 5), ["audited-user", "revoked_all", "admin", "1"])
    assert.strictEqual(await page.locator('#all-sessions tr:has(td:text-is("audited-user"))').count(), 0)
    await page.screenshot({ path: `${ARTIFACTS}browser-admin-audit.png`, fullPage: true })
    await context.close()
    assert.deepStrictEqual(blocked, [], "the policy blocked part of the page, or its script failed")
  })
})
