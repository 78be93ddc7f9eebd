import { Cause } from "effect"

/** What a child service's failed call was, without any value it carried: `DbError:<reason>`, or the defect's first line. */
export const describe_failure = (
  cause: Cause.Cause<unknown>,
): { retryable: boolean; commit_unknown: boolean; text: string } => {
  const failure = cause.reasons.find(Cause.isFailReason)
  if (failure === undefined)
    return { retryable: false, commit_unknown: false, text: `defect: ${Cause.pretty(cause).split("\n")[0]}` }
  const error = failure.error as {
    _tag?: string
    reason?: string
    is_retryable?: boolean
    commit_unknown?: boolean
  }
  return {
    retryable: error._tag === "DbError" && error.is_retryable === true,
    commit_unknown: error.commit_unknown === true,
    text: `${error._tag}${error.reason === undefined ? "" : `:${error.reason}`}`,
  }
}
