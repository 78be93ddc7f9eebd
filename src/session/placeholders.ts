import { sql } from "drizzle-orm"

// Placeholders the session statements share: values come from each call.

export const ph = sql.placeholder

/** A timestamp placeholder, encoded as the timestamptz columns are; null is "no bound" (-infinity). */
export const at = (name: string) =>
  sql`${sql.param<unknown, string>(ph(name), {
    mapToDriverValue: (value) => (value === null ? "-infinity" : (value as Date).toISOString()),
  })}`

/** A duration placeholder in milliseconds, sent as an interval. */
export const interval = (name: string) =>
  sql`${sql.param<unknown, string>(ph(name), { mapToDriverValue: (ms) => `${ms as number} milliseconds` })}::interval`

/** A text placeholder (an event's reason), typed so PostgreSQL need not guess. */
export const text_param = (name: string) => sql`${ph(name)}::text`
