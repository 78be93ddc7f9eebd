import { assert } from "@effect/vitest"
import { Exit, Option } from "effect"

/**
 * Checks that every validation ended as a session or a retryable `DbError`
 * (never a defect, never another error) and counts each kind.
 */
export const tally_validations = (exits: ReadonlyArray<Exit.Exit<Option.Option<unknown>, unknown>>) => {
  let sessions = 0
  let retryable = 0
  for (const exit of exits) {
    if (Exit.isSuccess(exit)) {
      assert.isTrue(Option.isSome(exit.value))
      sessions++
      continue
    }
    const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail") as
      | { error: { _tag: string; is_retryable: boolean } }
      | undefined
    assert.isDefined(failure, `a call died instead of failing: ${String(exit.cause)}`)
    assert.strictEqual(failure?.error._tag, "DbError")
    assert.isTrue(failure?.error.is_retryable)
    retryable++
  }
  return { sessions, retryable }
}

/** Counts the process's unhandled rejections until `stop` is called. */
export const watch_unhandled_rejections = () => {
  let count = 0
  const listener = () => {
    count++
  }
  process.on("unhandledRejection", listener)
  return {
    get count() {
      return count
    },
    stop: () => process.off("unhandledRejection", listener),
  }
}
