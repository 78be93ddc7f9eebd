import { sql } from "drizzle-orm"
import type { Logger } from "drizzle-orm/logger"
import { Context, Effect, Exit, Option, Semaphore, Tracer } from "effect"
import { transaction_seconds } from "../observability/metrics.js"
import { AfterCommit, after_commit } from "./after-commit.js"
import { DbError } from "./errors.js"
import { Db, type Drizzle, Tx } from "./handle.js"

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

/**
 * A driver's outermost transaction: BEGIN on a connection of its own, then
 * COMMIT or ROLLBACK; the effect runs with `transaction_context` of it.
 */
export type RootTransaction = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  span?: Tracer.Span,
) => Effect.Effect<A, E | DbError, Exclude<R, Tx | Db>>

// Savepoints on one connection nest strictly: rolling back to one also undoes
// every savepoint opened after it. So the nested transactions opened at one
// level take turns instead of interleaving; each level (the transaction, and
// each savepoint) gives its own children a turn of their own, so a savepoint
// inside a savepoint does not wait for the one that contains it.
const SavepointTurn = Context.Reference<Semaphore.Semaphore>("effect-session-repo/SavepointTurn", {
  defaultValue: () => Semaphore.makeUnsafe(1),
})

/**
 * What an effect runs with inside the transaction (or savepoint) `tx`: `Tx`
 * and `Db` bound to it, a nesting level of its own, and the list its
 * after-commit actions go to (`committed`), and the transaction's span as
 * the parent of the spans inside it. One context, so entering a transaction
 * changes the fiber's context once.
 */
export const transaction_context = (
  tx: Drizzle,
  committed: Array<Effect.Effect<void>>,
  span?: Tracer.Span,
): Context.Context<Tx | Db> => {
  const context = Context.make(Tx, tx).pipe(
    Context.add(Db, tx),
    Context.add(SavepointTurn, Semaphore.makeUnsafe(1)),
    Context.add(AfterCommit, committed),
  )
  return span === undefined ? context : Context.add(context, Tracer.ParentSpan, span)
}

let savepoint_count = 0

/**
 * `effect` inside a savepoint of the transaction `tx`: released on success,
 * rolled back to on a failure, a defect or an interruption, and the cause
 * comes out unchanged.
 */
const in_savepoint = <A, E, R>(
  tx: Drizzle,
  effect: Effect.Effect<A, E, R>,
): Effect.Effect<A, E | DbError, Exclude<R, Tx | Db>> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const name = `esr_savepoint_${++savepoint_count}`
      const send = (statement: string) =>
        Effect.tryPromise({
          try: () => tx.execute(sql.raw(statement)),
          catch: (error) => DbError.from("transaction.savepoint", error),
        })
      yield* send(`SAVEPOINT ${name}`)
      const committed: Array<Effect.Effect<void>> = []
      const bound = Effect.provideContext(effect, transaction_context(tx, committed))
      const exit = yield* Effect.exit(restore(bound as Effect.Effect<A, E, Exclude<R, Tx | Db>>))
      if (Exit.isSuccess(exit)) {
        yield* send(`RELEASE SAVEPOINT ${name}`)
        // released: its actions wait for the transaction that contains it
        yield* Effect.forEach(committed, after_commit, { discard: true })
        return exit.value
      }
      // a failed ROLLBACK TO leaves the outer transaction failing on its own
      yield* Effect.ignore(send(`ROLLBACK TO SAVEPOINT ${name}`))
      return yield* Effect.failCause(exit.cause)
    }),
  )

/** How a transaction ended: committed, rolled back, or lost with its connection during COMMIT. */
const outcome_of = (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit)) return "commit"
  const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail")
  return failure !== undefined && failure.error instanceof DbError && failure.error.commit_unknown === true
    ? "commit_unknown"
    : "rollback"
}

/**
 * The outermost transaction `root` of `effect` in a span of its own, its
 * outcome recorded on the span (`db.transaction.outcome`) and, with its time,
 * in the `session_transaction_duration_seconds` histogram. The driver makes
 * the span the parent inside the transaction, in the one context change a
 * transaction makes anyway (`withSpan` would add two).
 */
const observed = <A, E, R>(root: RootTransaction, effect: Effect.Effect<A, E, R>) =>
  Effect.useSpan("Database.transaction", { kind: "client" }, (span) =>
    Effect.contextWith((context: Context.Context<never>) => {
      const started = performance.now()
      return Effect.onExit(root(effect, span), (exit) =>
        Effect.sync(() => {
          const outcome = outcome_of(exit)
          span.attribute("db.transaction.outcome", outcome)
          transaction_seconds(outcome).updateUnsafe((performance.now() - started) / 1000, context)
        }),
      )
    }),
  )

const make_database = (root: RootTransaction, migrate: Effect.Effect<void, DbError>): DatabaseShape => ({
  transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.flatMap(Effect.serviceOption(Tx), (outer) =>
      Option.isSome(outer)
        ? SavepointTurn.use((turn) => turn.withPermits(1)(in_savepoint(outer.value, effect)))
        : observed(root, effect),
    ) as Effect.Effect<A, E | DbError, Exclude<R, Tx | Db>>,
  migrate,
})

/** What a driver layer provides: `Database` over `pool`, and `Db` bound to the pool. */
export const database_context = (
  pool: Drizzle,
  root: RootTransaction,
  run_migrations: () => Promise<unknown>,
): Context.Context<Database | Db> => {
  const migrate = Effect.tryPromise({
    try: () => run_migrations(),
    catch: (error) => DbError.from("migrate", error),
  }).pipe(Effect.asVoid)
  return Context.make(Database, make_database(root, migrate)).pipe(Context.add(Db, pool))
}

export type StatementObserver = (sql: string) => void

/** A Drizzle logger that passes on the statement text only: parameters hold token hashes. */
export const statement_logger = (observe: StatementObserver | undefined): Logger | false =>
  observe === undefined ? false : { logQuery: (sql) => observe(sql) }
