import { Effect, Metric } from "effect"
import type { AnyAccountId } from "../schema/session-table.js"
import type { SessionRejectionReason } from "../session/errors.js"
import type { SessionEvent } from "../session/events.js"

// The package's metrics, in Effect's registry: export them with
// `effect/observability` (PrometheusMetrics, OtlpMetrics; see the README).
// Each labelled series is a metric of its own, made on first use: one made
// by Metric.withAttributes copies the fiber's context on every update, and
// series of one metric taking turns rebuild its registry key each time.

/** One series per label value: `make` with the attributes `{ [label]: value }`, made on first use. */
const by_label = <M>(make: (attributes: Readonly<Record<string, string>>) => M, label: string) => {
  const series = new Map<string, M>()
  return (value: string): M => {
    let found = series.get(value)
    if (found === undefined) {
      found = make({ [label]: value })
      series.set(value, found)
    }
    return found
  }
}

/** A validation's outcome: valid, or the rejection's reason. */
export type ValidationOutcome = "valid" | SessionRejectionReason

export const session_validations = by_label(
  (attributes) =>
    Metric.counter("session_validations_total", {
      description: "Session validations, by outcome (valid or the rejection's reason)",
      incremental: true,
      attributes,
    }),
  "outcome",
)

/** What became of a touch that was due. */
export type TouchResult = "written" | "unchanged" | "coalesced" | "dropped" | "failed"

export const session_cache_lookups = by_label(
  (attributes) =>
    Metric.counter("session_cache_lookups_total", {
      description:
        "Validations that asked the session cache, by result: hit (valid reading) or miss (read from the database)",
      incremental: true,
      attributes,
    }),
  "result",
)

export const session_touches = by_label(
  (attributes) =>
    Metric.counter("session_touches_total", {
      description:
        "Due touches of last_seen_at: written, unchanged (another instance wrote it), coalesced into one in flight, dropped (too many pending) or failed",
      incremental: true,
      attributes,
    }),
  "result",
)

const session_events_counter = by_label(
  (attributes) =>
    Metric.counter("session_events_total", {
      description: "Sessions per committed lifecycle event kind (a revoke of all counts each session)",
      incremental: true,
      attributes,
    }),
  "kind",
)

const session_revocations_counter = by_label(
  (attributes) =>
    Metric.counter("session_revocations_total", {
      description: "Sessions revoked, by reason (logout, owner, admin, password_change)",
      incremental: true,
      attributes,
    }),
  "reason",
)

export const db_errors = by_label(
  (attributes) =>
    Metric.counter("session_db_errors_total", {
      description: "Database errors, by reason",
      incremental: true,
      attributes,
    }),
  "reason",
)

// from 0.5 ms to 10 s
const SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

export const statement_seconds = by_label(
  (attributes) =>
    Metric.histogram("session_statement_duration_seconds", {
      description: "Time from sending a statement to its result, by statement",
      boundaries: SECONDS,
      attributes,
    }),
  "statement",
)

export const transaction_seconds = by_label(
  (attributes) =>
    Metric.histogram("session_transaction_duration_seconds", {
      description: "Time from BEGIN to the end of COMMIT or ROLLBACK, by outcome",
      boundaries: SECONDS,
      attributes,
    }),
  "outcome",
)

export const pool_connections = by_label(
  (attributes) =>
    Metric.gauge("session_pool_connections", {
      description: "Connections of the pool: open, idle, and callers waiting for one",
      attributes,
    }),
  "state",
)

/** Counts committed events: per kind, and revocations per reason (sessions, not events). */
export const record_event_metrics = (
  events: ReadonlyArray<SessionEvent<AnyAccountId>>,
): Effect.Effect<void> =>
  Effect.forEach(
    events,
    (event) => {
      const sessions = "count" in event ? event.count : 1
      const counted = Metric.update(session_events_counter(event.kind), sessions)
      return event.kind === "revoked" || event.kind === "revoked_all" || event.kind === "revoked_others"
        ? Effect.andThen(counted, Metric.update(session_revocations_counter(event.reason), sessions))
        : counted
    },
    { discard: true },
  )
