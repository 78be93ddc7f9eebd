// Checked by `npm run typecheck`, never run: with its table registered, an
// application's account ids have the key's type everywhere, without casts.
import { Effect, Layer, Option } from "effect"
import { HttpServerResponse } from "effect/http"
import {
  type AuthSession,
  auth_session,
  layer_session_policy,
  query_session_list_for_account,
  SessionRepo,
} from "effect-session-repo"
import { CurrentSession, with_session } from "effect-session-repo/http"
import { user_session } from "./schema.ts"

export const sessions = SessionRepo.layer(user_session).pipe(Layer.provide(layer_session_policy()))

export const typed = Effect.gen(function* () {
  const repo = yield* SessionRepo
  const { session } = yield* repo.create_session(42)
  const id: number = session.account_id
  const listed: ReadonlyArray<AuthSession> = yield* repo.list_for_account(id)
  const first: number | undefined = listed[0]?.account_id
  const validated = yield* repo.validate("token")
  const owner: Option.Option<number> = Option.map(validated, (s) => s.account_id)
  const admin = yield* repo.list_all_active()
  const label: string | undefined = admin[0]?.username
  const queried = yield* query_session_list_for_account(id)
  return { first, owner, label, queried }
})

export const route = with_session(
  Effect.gen(function* () {
    const { session } = yield* CurrentSession
    const id: number = session.account_id
    return HttpServerResponse.jsonUnsafe({ id })
  }),
)

export const wrong_types = Effect.gen(function* () {
  const repo = yield* SessionRepo
  // @ts-expect-error a serial key's id is a number
  yield* repo.create_session("42")
  // @ts-expect-error likewise for the ownership guard
  yield* repo.revoke_for_account("0".repeat(64), "42")
  // @ts-expect-error and for the query functions
  yield* query_session_list_for_account(42n)
  const { session } = yield* repo.create_session(1)
  // @ts-expect-error the id is not a string
  const text: string = session.account_id
  return text
})

// @ts-expect-error the repo takes the registered table only: the standalone one has uuid (string) ids
export const other_table = SessionRepo.layer(auth_session)
