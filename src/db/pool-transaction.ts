import { Effect, type Tracer } from "effect"
import type pg from "pg"
import { run_committed } from "./after-commit.js"
import { type RootTransaction, transaction_context } from "./database.js"
import { DbError } from "./errors.js"
import type { Db, Drizzle, Tx } from "./handle.js"

/** A connection held by one transaction. */
interface Held {
  readonly client: pg.PoolClient
  readonly handle: Drizzle
  /** BEGIN was sent and COMMIT has not come back: the release must send ROLLBACK. */
  open: boolean
  /** A control statement failed: the connection is closed, not reused. */
  broken: boolean
  /** The transaction's after-commit actions, run once it committed and the connection is back. */
  readonly committed: Array<Effect.Effect<void>>
}

/**
 * Waits for a pooled connection. A transaction interrupted while it waits (a
 * timeout shedding load, say) takes none: one that arrives later goes straight
 * back to the pool.
 */
const connect = (pool: pg.Pool): Effect.Effect<pg.PoolClient, DbError> =>
  Effect.callback((resume) => {
    let abandoned = false
    pool.connect().then(
      (client) => (abandoned ? client.release() : resume(Effect.succeed(client))),
      (error: unknown) => {
        if (!abandoned) resume(Effect.fail(DbError.from("transaction.connect", error)))
      },
    )
    return Effect.sync(() => {
      abandoned = true
    })
  })

const send = (held: Held, statement: "BEGIN" | "COMMIT" | "ROLLBACK") =>
  Effect.tryPromise({
    try: () => held.client.query(statement),
    catch: (error) => {
      held.broken = true
      return DbError.from(`transaction.${statement.toLowerCase()}`, error, {
        at_commit: statement === "COMMIT",
      })
    },
  })

/** What a committed transaction waits for on its connection (`writes_wait_for_standby`). */
type CommittedOn = (client: pg.PoolClient, signal: AbortSignal) => Promise<void>

/** `value` once `committed_on` has resolved on the committed transaction's connection. */
const confirm = <A>(held: Held, committed_on: CommittedOn, value: A) =>
  Effect.tryPromise({
    try: (signal) => committed_on(held.client, signal),
    catch: (error) => {
      // a wait that ran out leaves the connection as it was; one that could not ask does not
      held.broken = (error as Error).cause !== undefined
      return DbError.from("transaction.commit", error, { at_commit: true })
    },
  }).pipe(Effect.as(value))

/** The connection back to the pool, or closed when its state is in doubt. */
const give_back = (held: Held) =>
  held.client.release(held.broken ? new Error("transaction connection in doubt") : undefined)

/**
 * Transactions on a node-postgres pool, owned here rather than by Drizzle:
 * whatever fails (BEGIN, the effect, COMMIT, ROLLBACK) or interrupts, the
 * connection goes back to the pool exactly once, and is closed instead when
 * its state is in doubt. (Drizzle 0.45 sends BEGIN outside its try/finally,
 * so a connection lost during BEGIN was never returned: the pool shrank by one
 * slot per such failure until every caller waited forever.)
 *
 * Interruption rolls back before it completes; a statement still running on
 * the connection finishes first (the driver queues the ROLLBACK behind it).
 */
export const pool_transaction =
  (
    pool: pg.Pool,
    handle_for: (client: pg.PoolClient) => Drizzle,
    committed_on?: CommittedOn,
  ): RootTransaction =>
  <A, E, R>(effect: Effect.Effect<A, E, R>, span?: Tracer.Span) =>
    // a chain rather than generators: every create and rotation runs this
    Effect.acquireUseRelease(
      Effect.map(
        Effect.interruptible(connect(pool)),
        (client): Held => ({
          client,
          handle: handle_for(client),
          open: false,
          broken: false,
          committed: [],
        }),
      ),
      (held) => {
        // open before BEGIN is sent: interrupted while BEGIN is on its way, the
        // release's ROLLBACK queues behind it, so the connection never goes back
        // inside a transaction (a ROLLBACK with none open is only a warning)
        held.open = true
        const bound = Effect.provideContext(
          effect,
          transaction_context(held.handle, held.committed, span),
        ) as Effect.Effect<A, E, Exclude<R, Tx | Db>>
        return Effect.flatMap(send(held, "BEGIN"), () =>
          Effect.flatMap(bound, (value) => {
            // the outcome of a COMMIT once sent is the caller's to know: wait for it
            const committed = Effect.uninterruptible(
              Effect.map(send(held, "COMMIT"), () => {
                held.open = false
                return value
              }),
            )
            return committed_on === undefined
              ? committed
              : Effect.flatMap(committed, () => confirm(held, committed_on, value))
          }),
        )
      },
      // Uninterruptible, like every release. Closed (not open) here means its
      // COMMIT succeeded, even if an interruption then took the caller's value:
      // the actions run, with the connection back in the pool (one that needs
      // a connection must not wait for this one).
      (held) =>
        held.open
          ? Effect.map(Effect.ignore(send(held, "ROLLBACK")), () => give_back(held))
          : Effect.andThen(
              Effect.sync(() => give_back(held)),
              run_committed(held.committed),
            ),
    )
