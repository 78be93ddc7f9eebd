import { Cause, Context, Effect } from "effect"

/**
 * The work to do once the current transaction has committed: what a change
 * tells this process (its events, its cache) must not be told for work that
 * rolls back. Each transaction level has its own list: a savepoint's joins
 * its parent's when the savepoint is released and is dropped when it rolls
 * back; the outermost transaction's runs after its COMMIT succeeded.
 */
export class AfterCommit extends Context.Service<AfterCommit, Array<Effect.Effect<void>>>()(
  "effect-session-repo/AfterCommit",
) {}

/**
 * Runs `action` once the current transaction commits. Outside a transaction
 * opened by `Database.transaction` it runs at once: a statement sent on the
 * pool has committed when it returns.
 */
export const after_commit = (action: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.contextWith((context: Context.Context<never>) => {
    const pending = Context.getOrUndefined(context, AfterCommit)
    if (pending === undefined) return run_committed([action])
    pending.push(action)
    return Effect.void
  })

/**
 * The actions of committed work, in the order they were registered, each run
 * to its end without interruption: the change is done, so what it tells this
 * process is not left half-told. An action's failure or defect is logged and
 * does not stop the others nor reach the caller, whose change committed.
 */
export const run_committed = (actions: ReadonlyArray<Effect.Effect<void>>): Effect.Effect<void> =>
  actions.length === 0
    ? Effect.void
    : Effect.uninterruptible(
        Effect.forEach(
          actions,
          (action) =>
            Effect.catchCause(action, (cause) =>
              Effect.logWarning("an after-commit action failed", Cause.pretty(cause)),
            ),
          { discard: true },
        ),
      )
