import { Cause, Context, Effect, Exit, type Fiber, type Tracer } from "effect"
import { run_committed } from "./after-commit.js"
import { type RootTransaction, transaction_context } from "./database.js"
import { DbError } from "./errors.js"
import type { Db, Drizzle, Tx } from "./handle.js"

/** Carries the inner effect's failure through the driver's rollback path. */
class Rollback<E> {
  constructor(readonly cause: Cause.Cause<E>) {}
}

/** A client whose transactions run in a callback, as PGlite's do. */
interface CallbackTransactions<Connection> {
  transaction<A>(callback: (tx: Connection) => Promise<A>): Promise<A>
}

/**
 * Transactions on PGlite through its `transaction(callback)`: PGlite has one
 * connection, and only its own transaction API keeps every other statement
 * out until the transaction ends. The effect runs in the callback with the
 * caller's services plus `transaction_context` (`handle_for` the transaction); a
 * failed `Exit` is thrown as a private `Rollback`, so the driver rolls back,
 * and its cause comes out unchanged.
 */
export const callback_transaction =
  <Connection>(
    client: CallbackTransactions<Connection>,
    handle_for: (tx: Connection) => Drizzle,
  ): RootTransaction =>
  <A, E, R>(effect: Effect.Effect<A, E, R>, span?: Tracer.Span) =>
    Effect.flatMap(Effect.context<Exclude<R, Tx | Db>>(), (context) =>
      Effect.callback<A, E | DbError>((resume) => {
        let fiber: Fiber.Fiber<A, E> | undefined
        let interrupted = false
        const committed: Array<Effect.Effect<void>> = []
        // told once, by whichever path sees the commit first: an interruption
        // that arrives while the resumed fiber runs them also ends here
        let told = false
        const tell = Effect.suspend(() => {
          if (told) return Effect.void
          told = true
          return run_committed(committed)
        })
        const settled = client
          .transaction(
            (connection) =>
              new Promise<A>((commit, rollback) => {
                // Interrupted while waiting for the connection: roll back without running the effect.
                if (interrupted) return rollback(new Rollback(Cause.interrupt()))
                const tx = handle_for(connection)
                const bound = Context.merge(
                  context,
                  transaction_context(tx, committed, span),
                ) as Context.Context<R>
                // a fiber of its own, since the driver holds the transaction open until the callback's promise settles
                fiber = Effect.runForkWith(bound)(effect)
                fiber.addObserver((exit) =>
                  Exit.isSuccess(exit) ? commit(exit.value) : rollback(new Rollback(exit.cause)),
                )
              }),
          )
          .then(
            (value) => ({ committed: true as const, value }),
            (error: unknown) => ({ committed: false as const, error }),
          )
        void settled.then((outcome) =>
          resume(
            outcome.committed
              ? Effect.as(tell, outcome.value)
              : outcome.error instanceof Rollback
                ? Effect.failCause(outcome.error.cause as Cause.Cause<E>)
                : Effect.fail(DbError.from("transaction", outcome.error)),
          ),
        )
        // On interruption: interrupt the effect and wait for the rollback, so the
        // connection is free when the interruption completes (or for the commit,
        // when the effect had already ended: then what committed is still told).
        return Effect.suspend(() => {
          interrupted = true
          if (fiber === undefined) return Effect.void
          fiber.interruptUnsafe()
          return Effect.flatMap(
            Effect.promise(() => settled),
            (outcome) => (outcome.committed ? tell : Effect.void),
          )
        })
      }),
    )
