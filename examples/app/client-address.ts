import { isIP } from "node:net"
import { Context, Effect, Option } from "effect"
import { HttpServerRequest } from "effect/http"
import ipaddr from "ipaddr.js"

// Anyone can send X-Forwarded-For, so it says nothing unless a proxy of ours
// wrote it. Each proxy appends the address it got the request from. So the
// chain is read from the right, starting at the socket's peer: while the
// address at hand is one of our proxies, the entry before it is what that
// proxy saw; the first address that is not one of ours is the client.
// Entries further left were written by the client itself and may be forged.
// Trust goes by address, not by counting hops: a client that reaches the app
// directly, past the proxy, is not believed whatever it sends.

type Address = ipaddr.IPv4 | ipaddr.IPv6
type Range = readonly [Address, number]

/** The proxies whose X-Forwarded-For is believed (`TRUSTED_PROXIES`); none unless configured. */
export const TrustedProxies = Context.Reference<ReadonlyArray<Range>>("example/TrustedProxies", {
  defaultValue: () => [],
})

// Strictly an address (node's isIP: no "0x7f.1" forms), IPv4-mapped IPv6 as IPv4.
const address_of = (text: string | undefined): Address | undefined =>
  text !== undefined && isIP(text) !== 0 ? ipaddr.process(text) : undefined

/**
 * Addresses and CIDR ranges, IPv4 or IPv6 ("127.0.0.1", "::1", "10.0.0.0/8");
 * a bare address is a range of one. Throws on anything else.
 */
export const parse_trusted_proxies = (entries: ReadonlyArray<string>): ReadonlyArray<Range> =>
  entries
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry): Range => {
      const [text, bits] = entry.split("/", 2)
      const address = address_of(text)
      if (address === undefined || (bits !== undefined && !ipaddr.isValidCIDR(entry)))
        throw new Error(`not an IP address or CIDR range: ${entry}`)
      return bits === undefined ? [address, address.kind() === "ipv4" ? 32 : 128] : ipaddr.parseCIDR(entry)
    })

const is_trusted = (address: Address, proxies: ReadonlyArray<Range>) =>
  proxies.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits))

/**
 * The client's address, given the socket's `peer` and the request's
 * X-Forwarded-For: the peer itself unless it is a trusted proxy, else the
 * chain walked from the right as above. A malformed entry ends the walk at
 * the proxy that wrote it: garbage must never reach the session layer.
 */
export const forwarded_client = (
  peer: string | undefined,
  forwarded_for: string | undefined,
  proxies: ReadonlyArray<Range>,
): string | undefined => {
  let client = address_of(peer)
  if (client === undefined) return undefined
  const entries = forwarded_for === undefined ? [] : forwarded_for.split(",").reverse()
  for (const entry of entries) {
    if (!is_trusted(client, proxies)) break
    const reported = address_of(entry.trim())
    if (reported === undefined) break
    client = reported
  }
  return client.kind() === "ipv6" ? (client as ipaddr.IPv6).toRFC5952String() : client.toString()
}

/** Whether the warning about X-Forwarded-For without trusted proxies was logged (once per process). */
let warned_about_proxy = false

/** The client's IP address as far as the app can trust it: the socket's, or the trusted proxies' report. */
export const client_address = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const proxies = yield* TrustedProxies
  const forwarded_for = request.headers["x-forwarded-for"]
  if (proxies.length === 0 && forwarded_for !== undefined && !warned_about_proxy) {
    warned_about_proxy = true
    // every client then looks like the proxy: one client's failed logins throttle them all
    yield* Effect.logWarning(
      "X-Forwarded-For arrives but TRUSTED_PROXIES is empty: behind a reverse proxy, set it to the proxy's address",
    )
  }
  return forwarded_client(Option.getOrUndefined(request.remoteAddress), forwarded_for, proxies)
})

/** Headers by which a proxy names the client it forwards for. */
const FORWARDING_HEADERS = ["x-forwarded-for", "forwarded", "x-real-ip"]

/**
 * Whether the client is on this machine (a loopback address), judged by
 * `client_address`. A request that names a client in a forwarding header but
 * comes from a peer that is no trusted proxy is never local: it came through
 * a proxy the app was not told about (or the client wrote the header), and
 * such a proxy on this machine would pass every client off as local.
 */
export const is_local_client = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const proxies = yield* TrustedProxies
  const peer = address_of(Option.getOrUndefined(request.remoteAddress))
  const forwarded = FORWARDING_HEADERS.some((name) => request.headers[name] !== undefined)
  if (forwarded && (peer === undefined || !is_trusted(peer, proxies))) return false
  const client = address_of(yield* client_address)
  return client !== undefined && client.range() === "loopback"
})
