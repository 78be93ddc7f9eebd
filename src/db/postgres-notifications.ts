import { Deferred, Effect, Exit } from "effect"
import pg from "pg"
import { DbError } from "./errors.js"
import { type NotificationHandlers, Notifications } from "./notifications.js"

/** How long the first LISTEN waits for its own test notification. */
export const NOTIFICATION_PROBE_MS = 5_000

/** Before the `attempt`th try to listen again after a loss: 100 ms, doubling, at most 5 s. */
const relisten_delay = (attempt: number) => Math.min(100 * 2 ** attempt, 5_000)

/**
 * Waits `ms` of real time, whatever Clock the context has: the listener
 * deals with a network, and a test's frozen clock must not stop it.
 */
const real_sleep = (ms: number) =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

const ignore = () => {}

/**
 * One listening connection, until it is lost: connects, LISTENs, tells
 * `listening(true)` (after `ready`, when given, has seen a notification
 * arrive), then waits for the connection's end.
 */
const listen_once = (
  Client: typeof pg.Client,
  config: pg.ClientConfig,
  channel: string,
  handlers: NotificationHandlers,
  ready: Effect.Effect<void, DbError, never> | undefined,
) =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new Client({ ...config, application_name: "effect-session-repo listener" })
        // a lost connection ends this listener; it must not end the process
        client.on("error", ignore)
        client.on("notification", (message) => handlers.payload(message.payload ?? ""))
        await client.connect()
        await client.query(`LISTEN ${client.escapeIdentifier(channel)}`)
        return client
      },
      catch: (error) => DbError.from("notifications.listen", error),
    }),
    (client) =>
      Effect.gen(function* () {
        if (ready !== undefined) yield* ready
        handlers.listening(true)
        yield* Effect.callback<void>((resume) => {
          const ended = () => resume(Effect.void)
          client.once("end", ended)
          client.once("error", ended)
        })
      }).pipe(Effect.ensuring(Effect.sync(() => handlers.listening(false)))),
    (client) => Effect.promise(() => client.end().catch(ignore)),
  )

/**
 * LISTEN on a connection of its own to `config`'s database, made by `Client`
 * (one that chooses among several hosts, say). The first connection must see
 * a notification sent by `probe` (from the pool) arrive; after that, a lost
 * connection is listened again with backoff for as long as the scope lives.
 */
export const postgres_notifications = (
  config: pg.ClientConfig,
  probe: (channel: string, payload: string) => Promise<unknown>,
  Client: typeof pg.Client = pg.Client,
) =>
  Notifications.of({
    listen: (channel, handlers) =>
      Effect.gen(function* () {
        const token = `probe:${crypto.randomUUID()}`
        const arrived = yield* Deferred.make<void>()
        const watched: NotificationHandlers = {
          payload: (payload) => {
            if (payload === token) Deferred.doneUnsafe(arrived, Effect.void)
            else handlers.payload(payload)
          },
          listening: handlers.listening,
        }
        const not_arriving = new DbError({
          operation: "notifications.listen",
          reason: "other",
          message:
            "notifications.listen failed: a notification sent to the database did not reach the listening connection " +
            `within ${NOTIFICATION_PROBE_MS} ms. Behind PgBouncer in transaction mode LISTEN cannot work: ` +
            "give the listener a direct connection to PostgreSQL (listen_url, DATABASE_LISTEN_URL)",
        })
        const ready = Effect.tryPromise({
          try: () => probe(channel, token),
          catch: (error) => DbError.from("notifications.probe", error),
        }).pipe(
          Effect.andThen(
            Effect.raceFirst(
              Deferred.await(arrived),
              Effect.andThen(real_sleep(NOTIFICATION_PROBE_MS), Effect.fail(not_arriving)),
            ),
          ),
        )
        const started = yield* Deferred.make<void, DbError>()
        // the caller resumes once the cache is told it is listening
        const first = listen_once(
          Client,
          config,
          channel,
          {
            ...watched,
            listening: (listening) => {
              watched.listening(listening)
              if (listening) Deferred.doneUnsafe(started, Exit.void)
            },
          },
          ready,
        )
        // after a loss: listen again, backing off while it fails, from the start once it worked
        const again = (attempt: number): Effect.Effect<void> =>
          Effect.andThen(
            real_sleep(relisten_delay(attempt)),
            Effect.matchCauseEffect(listen_once(Client, config, channel, watched, undefined), {
              onFailure: (cause) =>
                Effect.andThen(
                  Effect.logWarning("notifications: could not listen again", cause),
                  Effect.suspend(() => again(attempt + 1)),
                ),
              onSuccess: () => Effect.suspend(() => again(0)),
            }),
          )
        // a failed start is the caller's failure; after a good one, a lost connection is listened again
        yield* Effect.forkScoped(
          Effect.matchCauseEffect(first, {
            onFailure: (cause) => Deferred.failCause(started, cause),
            onSuccess: () => again(0),
          }),
        )
        yield* Deferred.await(started)
      }),
  })
