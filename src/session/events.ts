import { Context, Effect, Layer, PubSub, type Scope, Stream } from "effect"
import { after_commit } from "../db/after-commit.js"
import { StandbyReads, type StandbyReadsShape } from "../db/standby-reads.js"
import { record_event_metrics } from "../observability/metrics.js"
import type { AccountId } from "../schema/register.js"
import type { AnyAccountId } from "../schema/session-table.js"
import { SessionCache, type SessionCacheShape } from "./cache.js"

/** Who ended a session by revoking it. */
export const REVOKE_REASONS = ["logout", "owner", "admin", "password_change"] as const
export type RevokeReason = (typeof REVOKE_REASONS)[number]

/** Why a session was found ended. */
export type EndReason = "expired" | "idle" | "absolute"

/** The session an event is about: named by a prefix of its hash (`session_prefix`), never by its token or hash. */
interface OfSession<Id> {
  readonly at: Date
  readonly account_id: Id
  readonly session: string
  /** The device the session was created on, as stored. */
  readonly client_ip: string | null
  readonly user_agent: string | null
}

/** An event of many sessions of one account at once. */
interface OfAccount<Id> {
  readonly at: Date
  readonly account_id: Id
  readonly reason: RevokeReason
  readonly count: number
}

/**
 * What happened to sessions, told only once the change has committed (and
 * recorded in the audit table, when there is one, by the change's own
 * statement). `at` is from Effect's Clock.
 */
export type SessionEvent<Id extends AnyAccountId = AccountId> =
  | (OfSession<Id> & { readonly kind: "created" })
  /** `expires_at` moved forward by use (sliding expiry). */
  | (OfSession<Id> & { readonly kind: "extended" })
  /** A new token for the session; `session` is the prefix of the old one. */
  | (OfSession<Id> & { readonly kind: "rotated" })
  | (OfSession<Id> & { readonly kind: "reauthenticated" })
  | (OfSession<Id> & { readonly kind: "revoked"; readonly reason: RevokeReason })
  /** Deleted by the account's session limit, for a newer one. */
  | (OfSession<Id> & { readonly kind: "evicted" })
  /** Found ended by a validation: told once, by the validation that deleted it. */
  | (OfSession<Id> & { readonly kind: "ended"; readonly reason: EndReason })
  | (OfAccount<Id> & { readonly kind: "revoked_all" })
  /** Every session of the account but `session`, the caller's. */
  | (OfAccount<Id> & { readonly kind: "revoked_others"; readonly session: string })
  /** One batch of expired sessions deleted by cleanup. */
  | { readonly kind: "swept"; readonly at: Date; readonly count: number }

export type SessionEventKind = SessionEvent["kind"]

/** Events buffered per subscriber by default; past it, a subscriber loses its oldest events. */
export const SESSION_EVENTS_CAPACITY = 4096

export interface SessionEventsShape {
  /**
   * The events committed from the moment the returned stream's effect runs,
   * in the order they were told, for as long as the scope lives. Each
   * subscriber has its own buffer of `SESSION_EVENTS_CAPACITY`: one that
   * falls further behind loses its oldest events (the producers never wait
   * for a subscriber). The audit table loses nothing.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<SessionEvent>, never, Scope.Scope>
  /** Tells subscribers: call only with committed events (`tell_committed` does it). */
  readonly publish: (events: ReadonlyArray<SessionEvent<AnyAccountId>>) => Effect.Effect<void>
}

/** Lifecycle events of sessions in this process. `SessionRepo.layer` provides it. */
export class SessionEvents extends Context.Service<SessionEvents, SessionEventsShape>()(
  "effect-session-repo/SessionEvents",
) {
  static readonly layer = (capacity: number = SESSION_EVENTS_CAPACITY): Layer.Layer<SessionEvents> =>
    Layer.effect(
      SessionEvents,
      Effect.map(PubSub.sliding<SessionEvent>(capacity), (pubsub) =>
        SessionEvents.of({
          subscribe: Effect.map(PubSub.subscribe(pubsub), Stream.fromSubscription),
          publish: (events) =>
            events.length === 0 ? Effect.void : Effect.asVoid(PubSub.publishAll(pubsub, events as never)),
        }),
      ),
    )
}

/**
 * Where the changes of a repo's writes are told (`tell_committed`): its
 * subscribers, its cache if it has one, and its standby reads if it has them.
 * Provided to each write, so they are told whatever the caller's context holds.
 */
export const told_context = (
  events: SessionEventsShape,
  cache: SessionCacheShape | undefined,
  standby: StandbyReadsShape | undefined,
): Context.Context<SessionEvents | SessionCache> => {
  const subscribers = Context.make(SessionEvents, events).pipe(Context.add(StandbyReads, standby))
  return (
    cache === undefined ? subscribers : Context.add(subscribers, SessionCache, cache)
  ) as Context.Context<SessionEvents | SessionCache>
}

/**
 * Once the current transaction commits (a rolled-back change tells nothing):
 * counts `events` in the metrics, tells them to the `SessionEvents` of the
 * context, makes the context's `SessionCache` forget the sessions `changed`
 * (their keys) and, with standby reads, waits for the standbys to apply the
 * change (so no standby validates a session once its revoke returned). The
 * services are looked up now, so the work reaches them whichever fiber runs
 * the commit.
 */
export const tell_committed = (
  events: ReadonlyArray<SessionEvent<AnyAccountId>>,
  changed: ReadonlyArray<string> = [],
): Effect.Effect<void> =>
  events.length === 0 && changed.length === 0
    ? Effect.void
    : Effect.contextWith((context: Context.Context<never>) => {
        const subscribers = Context.getOrUndefined(context, SessionEvents)
        const cache = Context.getOrUndefined(context, SessionCache)
        const standby = Context.get(context, StandbyReads)
        return after_commit(
          Effect.andThen(
            Effect.sync(() => cache?.forget(changed)),
            Effect.andThen(
              record_event_metrics(events),
              Effect.andThen(
                subscribers === undefined ? Effect.void : subscribers.publish(events),
                standby === undefined || changed.length === 0 ? Effect.void : standby.settle,
              ),
            ),
          ),
        )
      })
