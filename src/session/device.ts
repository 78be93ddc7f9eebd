import { isIP } from "node:net"
import { Effect } from "effect"
import ipaddr from "ipaddr.js"
import { InvalidInput } from "./errors.js"
import type { IpStorage } from "./policy.js"

/** What a session records of the client that created it; both optional. */
export interface SessionDevice {
  /** The client's address, IPv4 or IPv6 (an IPv4-mapped IPv6 address is stored as IPv4). */
  readonly ip?: string | undefined
  /** The User-Agent header as received; cut to `MAX_USER_AGENT_LENGTH` characters. */
  readonly user_agent?: string | undefined
}

/** The longest User-Agent stored, in characters (the column's check repeats it). */
export const MAX_USER_AGENT_LENGTH = 512

/** Bytes of an address kept by `truncated` storage: a /24 of IPv4, a /48 of IPv6. */
const KEPT_BYTES = { ipv4: 3, ipv6: 6 } as const

/**
 * The address as `storage` keeps it: canonical text (IPv6 as RFC 5952, no
 * zone), its network part only, or nothing. Anything but an IPv4 or IPv6
 * address is `InvalidInput`.
 */
export const stored_client_ip = (
  ip: string | undefined,
  storage: IpStorage,
): Effect.Effect<string | null, InvalidInput> => {
  if (ip === undefined || storage === "none") return Effect.succeed(null)
  if (typeof ip !== "string" || isIP(ip) === 0)
    return Effect.fail(new InvalidInput({ field: "ip", message: "ip must be an IPv4 or IPv6 address" }))
  // process: an IPv4-mapped IPv6 address (a dual-stack socket's) becomes IPv4
  const address = ipaddr.process(ip)
  const bytes = address.toByteArray()
  if (storage === "truncated") bytes.fill(0, KEPT_BYTES[address.kind()])
  const kept = ipaddr.fromByteArray(bytes)
  return Effect.succeed(kept.kind() === "ipv6" ? (kept as ipaddr.IPv6).toRFC5952String() : kept.toString())
}

// control characters (C0, DEL, C1), NUL included: PostgreSQL text cannot hold NUL
const CONTROL_CHARACTERS = /\p{Cc}/gu

/**
 * The User-Agent as stored: client-controlled text, so never refused (that
 * would block a sign-in), only made safe: controls dropped, lone surrogates
 * replaced, cut to `MAX_USER_AGENT_LENGTH` code points; empty is none.
 */
export const stored_user_agent = (user_agent: string | undefined): string | null => {
  if (typeof user_agent !== "string") return null
  const cleaned = user_agent.replace(CONTROL_CHARACTERS, "").toWellFormed().trim()
  if (cleaned === "") return null
  const code_points = Array.from(cleaned)
  return code_points.length <= MAX_USER_AGENT_LENGTH
    ? cleaned
    : code_points.slice(0, MAX_USER_AGENT_LENGTH).join("")
}
