import { getTableName } from "drizzle-orm"
import { Context, Effect, type Scope } from "effect"
import type { DbError } from "../db/errors.js"
import type { Db } from "../db/handle.js"
import { Notifications } from "../db/notifications.js"
import type { AuthSession, SessionTable } from "../schema/session-table.js"
import { session_prefix } from "../token.js"
import { require_change_trigger, session_changes_channel } from "./change-trigger.js"

// Valid sessions as this process last read them, keyed by hash prefix (the
// notifications name sessions by prefix; two sessions sharing one only cost
// each other a miss). Only a valid reading is kept, and a hit is judged again
// by the Clock: the cache can make a validation faster, never more lenient
// than the row it read, and never outlive the row's end.

export interface SessionCacheOptions {
  /** Sessions kept at most; past it the oldest kept goes (default 100,000). */
  readonly max_entries?: number
  /**
   * How long a reading is served at most (default 30 s): the bound on a
   * revocation's delay should a notification be lost without the listener
   * noticing.
   */
  readonly max_age_ms?: number
}

export const DEFAULT_CACHE_MAX_ENTRIES = 100_000
export const DEFAULT_CACHE_MAX_AGE_MS = 30_000

const PREFIX = /^[0-9a-f]{8}$/

/** Invalidations remembered for reads still in flight; a read older than all of them is not kept. */
const RECENT_INVALIDATIONS = 4096

interface Entry {
  readonly id: string
  readonly session: AuthSession
  readonly read_at: number
}

export interface SessionCacheShape {
  /** The reading of session `id` if it is kept, listened for and younger than the maximum age at `now`. */
  readonly lookup: (id: string, now: number) => AuthSession | undefined
  /** Call before a read: what `keep` needs to know whether an invalidation overtook the read. */
  readonly begin_read: () => number
  /**
   * Whether a read of session `id` begun at `begun` still tells of it now:
   * the cache listens and no invalidation of the session arrived since.
   */
  readonly current: (id: string, begun: number) => boolean
  /** Keeps a valid reading begun at `begun` (read at `now`), unless an invalidation of it arrived since. */
  readonly keep: (id: string, session: AuthSession, begun: number, now: number) => void
  /** Forgets sessions changed by this process (after their commit) or named by a notification. */
  readonly forget: (ids_or_prefixes: ReadonlyArray<string>) => void
  /** Whether the listener is listening: the cache is bypassed while it is not. */
  readonly listening: () => boolean
}

/** The cache's state and rules, without the listener (`listen_for_changes` connects them). */
export const make_session_cache = (
  options: SessionCacheOptions = {},
): SessionCacheShape & {
  readonly on_notification: (payload: string) => void
  readonly on_listening: (listening: boolean) => void
} => {
  const max_entries = options.max_entries ?? DEFAULT_CACHE_MAX_ENTRIES
  const max_age_ms = options.max_age_ms ?? DEFAULT_CACHE_MAX_AGE_MS
  if (!Number.isSafeInteger(max_entries) || max_entries < 1)
    throw new Error("session cache: max_entries must be a positive integer")
  if (!Number.isFinite(max_age_ms) || max_age_ms <= 0)
    throw new Error("session cache: max_age_ms must be positive")
  const entries = new Map<string, Entry>()
  // every invalidation and flush takes the next number
  let sequence = 0
  // reads begun before this number were overtaken by a flush
  let flushed = 0
  // the last invalidations: [number, prefix], oldest first
  const recent: Array<readonly [number, string]> = []
  let is_listening = false

  const invalidate = (prefix: string) => {
    sequence++
    recent.push([sequence, prefix])
    if (recent.length > RECENT_INVALIDATIONS) recent.shift()
    entries.delete(prefix)
  }
  const flush = () => {
    sequence++
    flushed = sequence
    recent.length = 0
    entries.clear()
  }
  // whether a read of `prefix` begun at `begun` still tells of it: listened for and not overtaken
  const still_current = (prefix: string, begun: number) => is_listening && !overtaken(prefix, begun)
  const overtaken = (prefix: string, begun: number) => {
    if (begun === sequence) return false
    if (begun < flushed) return true
    const oldest = recent[0]
    // the invalidations right after `begun` are no longer remembered
    if (oldest === undefined || oldest[0] > begun + 1) return true
    for (let i = recent.length - 1; i >= 0 && (recent[i] as readonly [number, string])[0] > begun; i--)
      if ((recent[i] as readonly [number, string])[1] === prefix) return true
    return false
  }

  return {
    lookup: (id, now) => {
      if (!is_listening) return undefined
      const prefix = session_prefix(id)
      const entry = entries.get(prefix)
      if (entry === undefined || entry.id !== id) return undefined
      if (now - entry.read_at >= max_age_ms || now < entry.read_at) {
        entries.delete(prefix)
        return undefined
      }
      return entry.session
    },
    begin_read: () => sequence,
    current: (id, begun) => still_current(session_prefix(id), begun),
    keep: (id, session, begun, now) => {
      const prefix = session_prefix(id)
      if (!still_current(prefix, begun)) return
      if (entries.size >= max_entries && !entries.has(prefix)) {
        const oldest = entries.keys().next()
        if (!oldest.done) entries.delete(oldest.value)
      }
      entries.set(prefix, { id, session, read_at: now })
    },
    forget: (ids_or_prefixes) => {
      for (const value of ids_or_prefixes) invalidate(session_prefix(value))
    },
    listening: () => is_listening,
    on_notification: (payload) => {
      if (payload === "*") flush()
      // (another listener's start-up probe is not a prefix: it changes nothing)
      else for (const prefix of payload.split(",")) if (PREFIX.test(prefix)) invalidate(prefix)
    },
    on_listening: (listening) => {
      // whatever was sent while nobody listened is lost: start over either way
      flush()
      is_listening = listening
    },
  }
}

/** The session cache in use: the repo's writes forget what they change in it once committed. */
export class SessionCache extends Context.Service<SessionCache, SessionCacheShape>()(
  "effect-session-repo/SessionCache",
) {}

/**
 * A session cache for `table`, listening for its changes for as long as the
 * scope lives. Fails if the table lacks the notifying trigger or if
 * notifications do not arrive (see `Notifications`).
 */
export const listening_session_cache = (
  table: SessionTable,
  options: SessionCacheOptions = {},
): Effect.Effect<SessionCacheShape, DbError, Notifications | Db | Scope.Scope> =>
  Effect.gen(function* () {
    yield* require_change_trigger(table)
    const cache = make_session_cache(options)
    const notifications = yield* Notifications
    yield* notifications.listen(session_changes_channel(getTableName(table)), {
      payload: cache.on_notification,
      listening: cache.on_listening,
    })
    return cache
  })
