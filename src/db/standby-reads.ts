import { Context, type Effect } from "effect"
import type { Drizzle } from "./handle.js"

// Validations read from hot standbys, never answering "valid" for a session
// whose end has returned to its writer. Two halves, one rule each:
// - a reader counts a standby's answer only if the standby has replayed the
//   primary's WAL up to a position (the fence) fetched from the primary less
//   than FENCE_MAX_AGE_MS ago, and only a "valid" answer (anything else, or
//   an error, is asked of the primary);
// - a write that ends or changes sessions returns only once every standby
//   has applied it, or FENCE_MAX_AGE_MS after it committed: by then every
//   fence a reader still uses was fetched after the commit.
// docs/design.md ("Standby reads") has the argument and the failure modes.

/** How long a fetched fence is used; also how long a write waits for standbys that do not confirm. */
export const FENCE_MAX_AGE_MS = 1000

export interface StandbyReadsShape {
  /** A handle on the standbys' pool: for reads only. */
  readonly handle: Drizzle
  /** The WAL position a standby must have replayed for its answer to count, while one fetched recently enough is known. */
  readonly fence: () => string | undefined
  /**
   * Waits, after a write that ended or changed sessions committed, until
   * every standby has applied it (or FENCE_MAX_AGE_MS passed). Never fails.
   */
  readonly settle: Effect.Effect<void>
}

/** Standby reads, when the database layer was given a read URL (`layer_postgres`'s `read_url`); else undefined. */
export const StandbyReads = Context.Reference<StandbyReadsShape | undefined>(
  "effect-session-repo/StandbyReads",
  {
    defaultValue: () => undefined,
  },
)
