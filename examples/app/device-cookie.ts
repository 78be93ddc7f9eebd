import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { Context, Effect, Layer } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { shared_secret } from "./app-secret.ts"

// OWASP's "Slow Down Online Guessing Attacks with Device Cookies": a browser
// that signed in to an account gets a cookie naming the account and a random
// device id, signed with the app's key (HMAC-SHA256). A login attempt that
// carries a valid one for the account it tries is counted for that device
// alone (./throttle.ts): neither a crowd of failures from the address the
// user shares with an attacker, nor another device's failures, can lock it
// out. A stolen cookie gives its thief one device's budget, on that account
// only. The cookie holds no secret of the user's; the browser keeps one, for
// the account that signed in last.

export interface DeviceCookieShape {
  /** The HMAC key, shared by every process (./app-secret.ts). */
  readonly key: Uint8Array
  readonly name: string
  readonly secure: boolean
}

export class DeviceCookie extends Context.Service<DeviceCookie, DeviceCookieShape>()(
  "example/DeviceCookie",
) {}

/** The device cookie with the app's key: `__Host-device` when Secure, like the session cookie. */
export const device_cookie_layer = (options: { readonly secure: boolean }) =>
  Layer.effect(
    DeviceCookie,
    Effect.map(shared_secret("device_cookie"), (key) => ({
      key,
      name: options.secure ? "__Host-device" : "device",
      secure: options.secure,
    })),
  )

/** Long enough to outlive the sessions it was signed in with (90 days at most). */
const DEVICE_COOKIE_DAYS = 180

const signature = (key: Uint8Array, account_id: string, device: string) =>
  createHmac("sha256", key).update(`${account_id}.${device}`).digest()

/** Sets a new device cookie for `account_id` on the response (a new device id at each sign-in). */
export const set_device_cookie = (account_id: string) => (response: HttpServerResponse.HttpServerResponse) =>
  Effect.gen(function* () {
    const { key, name, secure } = yield* DeviceCookie
    const device = randomBytes(16).toString("base64url")
    const value = `${account_id}.${device}.${signature(key, account_id, device).toString("base64url")}`
    return HttpServerResponse.setCookieUnsafe(response, name, value, {
      httpOnly: true,
      secure,
      // only the app's own pages send logins
      sameSite: "strict",
      path: "/",
      maxAge: `${DEVICE_COOKIE_DAYS} days`,
    })
  })

/** The device id of the request's device cookie when it is validly signed for `account_id`, else undefined. */
export const trusted_device = (account_id: string) =>
  Effect.gen(function* () {
    const { key, name } = yield* DeviceCookie
    const request = yield* HttpServerRequest.HttpServerRequest
    const [account, device, signed, ...rest] = (request.cookies[name] ?? "").split(".")
    if (account !== account_id || device === undefined || signed === undefined || rest.length > 0)
      return undefined
    const expected = signature(key, account, device)
    const given = Buffer.from(signed, "base64url")
    return given.length === expected.length && timingSafeEqual(given, expected) ? device : undefined
  })
