import type { Logger } from "drizzle-orm/logger"
import { Cause, Context, Effect, Exit, type Fiber, Option, Semaphore } from "effect"
import { DbError } from "./errors.ts"
import { Db, type Drizzle, Tx } from "./handle.ts"

export interface DatabaseShape {
  /**
   * Runs `effect` in one transaction, with `Tx` and `Db` bound to it. Commits on
   * success; rolls back on a typed failure, a defect or an interruption, and the
   * failure comes out unchanged. Inside a transaction it opens a savepoint.
   */
  readonly transaction: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E | DbError, Exclude<R, Tx | Db>>
  /** Applies the migrations in `drizzle/` that have not run yet. */
  readonly migrate: Effect.Effect<void, DbError>
}

/** The root database service (the pool). Its layers also provide `Db` bound to the pool. */
export class Database extends Context.Service<Database, DatabaseShape>()("effect-session-repo/Database") {}

/** Carries the inner effect's failure through the driver's rollback path. */
class Rollback<E> {
  constructor(readonly cause: Cause.Cause<E>) {}
}

/**
 * Runs `effect` inside `handle.transaction(...)`: a transaction on the pool, a
 * savepoint on a transaction handle. The driver owns BEGIN/COMMIT/ROLLBACK and
 * savepoints; the effect runs in the callback with the caller's services.
 */
const run_in_transaction = <A, E, R>(handle: Drizzle, effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.context<Exclude<R, Tx | Db>>(), (context) =>
    Effect.callback<A, E | DbError>((resume) => {
      let fiber: Fiber.Fiber<A, E> | undefined
      let interrupted = false
      const settled = handle
        .transaction(
          (tx) =>
            new Promise<A>((commit, rollback) => {
              // Interrupted while waiting for a connection: roll back without running the effect.
              if (interrupted) return rollback(new Rollback(Cause.interrupt()))
              const bound = Context.add(Context.add(context, Tx, tx), Db, tx) as Context.Context<R>
              // a fiber of its own, since the driver holds the transaction open until the callback's promise settles
              fiber = Effect.runForkWith(bound)(effect)
              fiber.addObserver((exit) =>
                Exit.isSuccess(exit) ? commit(exit.value) : rollback(new Rollback(exit.cause)),
              )
            }),
        )
        .then(
          (value) => resume(Effect.succeed(value)),
          (error: unknown) =>
            resume(
              error instanceof Rollback
                ? Effect.failCause(error.cause as Cause.Cause<E>)
                : Effect.fail(DbError.from("transaction", error)),
            ),
        )
      // On interruption: interrupt the effect and wait for the rollback, so the
      // connection is back in the pool when the interruption completes. A
      // transaction still waiting for a connection is not waited for: it rolls
      // itself back as soon as it gets one.
      return Effect.suspend(() => {
        interrupted = true
        if (fiber === undefined) return Effect.void
        fiber.interruptUnsafe()
        return Effect.promise(() => settled)
      })
    }),
  )

// Savepoints on one connection nest strictly: rolling back to one also undoes
// every savepoint opened after it. So concurrent nested transactions in one
// transaction take turns instead of interleaving.
const savepoint_turns = new WeakMap<Drizzle, Semaphore.Semaphore>()
const savepoint_turn = (tx: Drizzle): Semaphore.Semaphore => {
  let turn = savepoint_turns.get(tx)
  if (turn === undefined) {
    turn = Semaphore.makeUnsafe(1)
    savepoint_turns.set(tx, turn)
  }
  return turn
}

const make_database = (pool: Drizzle, migrate: Effect.Effect<void, DbError>): DatabaseShape => ({
  transaction: (effect) =>
    Effect.flatMap(Effect.serviceOption(Tx), (outer) =>
      Option.isSome(outer)
        ? savepoint_turn(outer.value).withPermits(1)(run_in_transaction(outer.value, effect))
        : run_in_transaction(pool, effect),
    ),
  migrate,
})

/** What a driver layer provides: `Database` over `pool`, and `Db` bound to the pool. */
export const database_context = (
  pool: Drizzle,
  run_migrations: () => Promise<unknown>,
): Context.Context<Database | Db> => {
  const migrate = Effect.tryPromise({
    try: () => run_migrations(),
    catch: (error) => DbError.from("migrate", error),
  }).pipe(Effect.asVoid)
  return Context.make(Database, make_database(pool, migrate)).pipe(Context.add(Db, pool))
}

export type StatementObserver = (sql: string) => void

/** A Drizzle logger that passes on the statement text only: parameters hold token hashes. */
export const statement_logger = (observe: StatementObserver | undefined): Logger | false =>
  observe === undefined ? false : { logQuery: (sql) => observe(sql) }
