import { eq } from "drizzle-orm"
import { Effect, Layer, Redacted, Schema } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import {
  type AuthSession,
  account,
  Database,
  db_query,
  require_fresh_session,
  SessionRepo,
} from "effect-session-repo"
import {
  CurrentSession,
  clear_session_cookie,
  request_session_tokens,
  set_session_cookie,
  with_session,
} from "effect-session-repo/http"
import { AdminUsernames, require_admin } from "./admins.ts"
import { create_secret_table } from "./app-secret.ts"
import { client_address } from "./client-address.ts"
import {
  create_credential_table,
  credential,
  find_credential,
  find_password_hash,
  hash_password,
  lock_password_hash,
  upgrade_password_hash,
  verify_password,
} from "./credentials.ts"
import { set_device_cookie } from "./device-cookie.ts"
import { as_json_errors, HttpError, read_body } from "./http-error.ts"
import { MAX_PASSWORD_CHARACTERS, MIN_PASSWORD_CHARACTERS, password_problem } from "./password-policy.ts"
import { same_origin_only } from "./same-origin.ts"
import { admin_session_view, session_view } from "./session-view.ts"
import {
  answer_too_many_attempts,
  create_throttle_table,
  throttle_password_check,
  throttle_signup,
  unknown_account,
} from "./throttle.ts"

const Username = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]{3,32}$/))
// Passwords are any strings here: the body limit bounds them, and a new one's
// rules, its length included, are password_problem's (it says why).
const Credentials = Schema.Struct({ username: Username, password: Schema.String })
const Login = Schema.Struct({
  username: Schema.String.check(Schema.isMaxLength(200)),
  password: Schema.String,
})
const PasswordChange = Schema.Struct({ current_password: Schema.String, new_password: Schema.String })
const Reauthentication = Schema.Struct({ password: Schema.String })
const CREDENTIALS = `{ username: 3-32 of A-Z a-z 0-9 _ . -, password: ${MIN_PASSWORD_CHARACTERS}-${MAX_PASSWORD_CHARACTERS} characters }`

/** How recently the password must have been proven before signing out the other devices. */
const FRESH_FOR_MS = 10 * 60 * 1000

const find_account = (id: string) =>
  db_query("find_account", (db) => db.select().from(account).where(eq(account.id, id))).pipe(
    Effect.map((rows) => rows[0]),
  )

/** The account of the request's session; 401 when it was deleted meanwhile. */
const session_owner = (session: AuthSession) =>
  Effect.flatMap(find_account(session.account_id), (owner) =>
    owner === undefined
      ? Effect.fail(new HttpError({ status: 401, message: "not signed in" }))
      : Effect.succeed(owner),
  )

/** 400 saying why, when `username` may not choose `password` (./password-policy.ts). */
const refuse_weak_password = (password: string, username: string) => {
  const problem = password_problem(password, username)
  return problem === undefined ? Effect.void : Effect.fail(new HttpError({ status: 400, message: problem }))
}

/**
 * The account's stored password hash, once `password` is verified against it;
 * 403 with `wrong` otherwise, `TooManyAttempts` after too many wrong ones.
 */
const verified_password_hash = (account_id: string, password: string, wrong: string) =>
  Effect.gen(function* () {
    const stored = yield* find_password_hash(account_id)
    if (!(yield* throttle_password_check(account_id, verify_password(password, stored)))) {
      return yield* new HttpError({ status: 403, message: wrong })
    }
    return stored
  })

/**
 * Signs the new session in: its cookie on a JSON answer (with `notice`'s
 * fields). Sessions the request still carried are revoked, so a login never
 * leaves an old one behind. The session records the device it was created
 * on, for the user's session list.
 */
const signed_in = (status: number, account_id: string, username: string, notice: object = {}) =>
  Effect.gen(function* () {
    const repo = yield* SessionRepo
    // every session cookie the request carried, a planted one's included
    for (const previous of yield* request_session_tokens) yield* repo.revoke(previous)
    const request = yield* HttpServerRequest.HttpServerRequest
    const device = { ip: yield* client_address, user_agent: request.headers["user-agent"] }
    const { token, session } = yield* repo.create_session(account_id, { device })
    const response = HttpServerResponse.jsonUnsafe(
      { account: { id: account_id, username }, session: session_view(session, session.id), ...notice },
      { status },
    )
    const signed = yield* set_session_cookie(Redacted.value(token), session.expires_at)(response)
    // this browser has proven the password: its further attempts count on their own
    return yield* set_device_cookie(account_id)(signed)
  })

const signup = Effect.gen(function* () {
  const { username, password } = yield* read_body(Credentials, CREDENTIALS)
  yield* refuse_weak_password(password, username)
  const database = yield* Database
  yield* throttle_signup
  const password_hash = yield* hash_password(password)
  return yield* database.transaction(
    Effect.gen(function* () {
      const [created] = yield* db_query("signup", (db) =>
        db.insert(account).values({ username }).returning(),
      ).pipe(
        Effect.catchIf(
          (error) => error.reason === "unique_violation",
          () => Effect.fail(new HttpError({ status: 409, message: "that username is taken" })),
        ),
      )
      if (created === undefined) return yield* Effect.die("insert returned no row")
      yield* db_query("signup", (db) =>
        db.insert(credential).values({ account_id: created.id, password_hash }),
      )
      return yield* signed_in(201, created.id, created.username)
    }),
  )
}).pipe(answer_too_many_attempts)

const login = Effect.gen(function* () {
  const { username, password } = yield* read_body(Login, "{ username, password }")
  // a name no account can have is not looked up, but costs the same time
  const found = Schema.is(Username)(username) ? yield* find_credential(username) : undefined
  const throttled_as = found?.account_id ?? unknown_account(username)
  const valid = yield* throttle_password_check(throttled_as, verify_password(password, found?.password_hash))
  const wrong = new HttpError({ status: 401, message: "wrong username or password" })
  if (!valid || found === undefined) return yield* wrong
  // A password chosen before today's rules still works, so no one is locked
  // out; the answer asks for a new one (and the page shows why).
  const problem = password_problem(password, found.username)
  const notice = problem === undefined ? {} : { password_change_required: true, password_problem: problem }
  const database = yield* Database
  // The session is created under a share lock on the hash just verified: a
  // password change either waits for this login (and then revokes its session)
  // or commits first (and this login fails).
  const response = yield* database.transaction(
    Effect.gen(function* () {
      if ((yield* lock_password_hash(found.account_id, "share")) !== found.password_hash) return yield* wrong
      return yield* signed_in(200, found.account_id, found.username, notice)
    }),
  )
  // only now is the password at hand to hash again, if its hash is outdated
  yield* upgrade_password_hash(found.account_id, password, found.password_hash)
  return response
}).pipe(answer_too_many_attempts)

/**
 * Ends every session the request's cookies name and clears the cookie,
 * whatever happens. When the database cannot be reached, the answer says the
 * session still exists on the server (503): it ends at its expiry, or when
 * revoked from another device.
 */
const logout = Effect.gen(function* () {
  const repo = yield* SessionRepo
  const tokens = yield* request_session_tokens
  const ended = yield* Effect.forEach(tokens, (token) => repo.revoke(token), { discard: true }).pipe(
    Effect.as(true),
    Effect.catchTag("DbError", (error) =>
      Effect.as(Effect.logWarning("logout: the session could not be ended on the server", error), false),
    ),
  )
  const response = ended
    ? HttpServerResponse.jsonUnsafe({ ok: true })
    : HttpServerResponse.jsonUnsafe(
        {
          error:
            "signed out on this device, but the server could not end the session: it ends when it expires, or sign out everywhere from another device",
        },
        { status: 503 },
      )
  return yield* clear_session_cookie(response)
})

const me = with_session(
  Effect.gen(function* () {
    const { session } = yield* CurrentSession
    const admins = yield* AdminUsernames
    const owner = yield* session_owner(session)
    return HttpServerResponse.jsonUnsafe({
      account: { id: owner.id, username: owner.username, admin: admins.has(owner.username.toLowerCase()) },
      session: session_view(session, session.id),
    })
  }),
)

const my_sessions = with_session(
  Effect.gen(function* () {
    const { session } = yield* CurrentSession
    const sessions = yield* (yield* SessionRepo).list_for_account(session.account_id)
    return HttpServerResponse.jsonUnsafe({ sessions: sessions.map((s) => session_view(s, session.id)) })
  }),
)

const revoke_one = with_session(
  Effect.gen(function* () {
    const { session } = yield* CurrentSession
    const { id } = yield* HttpRouter.params
    // signing out another device, like signing out all of them, needs the password proven lately
    if (id !== session.id) yield* require_fresh_session(session, FRESH_FOR_MS)
    const revoked = yield* (yield* SessionRepo)
      .revoke_for_account(id ?? "", session.account_id, { reason: "owner" })
      .pipe(Effect.catchTag("InvalidInput", () => Effect.succeed(false)))
    // someone else's session and no session at all look the same
    if (!revoked) return yield* new HttpError({ status: 404, message: "no such session" })
    const response = HttpServerResponse.jsonUnsafe({ revoked: 1 })
    return id === session.id ? yield* clear_session_cookie(response) : response
  }),
)

/**
 * The password was just proven on the session of `token`: it becomes fresh
 * and moves to a new token, in the caller's transaction. A token stolen
 * before the proof must not gain the powers of a fresh session. Fails with
 * SessionRejected (401) when the session is gone.
 */
const prove_session = (token: Redacted.Redacted<string>) =>
  Effect.gen(function* () {
    const repo = yield* SessionRepo
    yield* repo.reauthenticate(token)
    return yield* repo.rotate(token)
  })

/** Sets the cookie of a session that moved to a new token. */
const set_rotated_cookie = (rotated: { token: Redacted.Redacted<string>; session: AuthSession }) =>
  set_session_cookie(Redacted.value(rotated.token), rotated.session.expires_at)

/** The user proves the password again, so the session counts as fresh for sensitive operations. */
const reauthenticate = with_session(
  Effect.gen(function* () {
    const { session, token } = yield* CurrentSession
    const { password } = yield* read_body(Reauthentication, "{ password }")
    yield* verified_password_hash(session.account_id, password, "wrong password")
    const rotated = yield* (yield* Database).transaction(prove_session(token))
    const response = HttpServerResponse.jsonUnsafe({
      session: session_view(rotated.session, rotated.session.id),
    })
    return yield* set_rotated_cookie(rotated)(response)
  }),
).pipe(answer_too_many_attempts)

const revoke_others = with_session(
  Effect.gen(function* () {
    const { session } = yield* CurrentSession
    // a stolen cookie alone must not be enough to lock its owner out
    yield* require_fresh_session(session, FRESH_FOR_MS)
    const revoked = yield* (yield* SessionRepo).revoke_others_for_account(session.account_id, session.id, {
      reason: "owner",
    })
    return HttpServerResponse.jsonUnsafe({ revoked })
  }),
)

const change_password = with_session(
  Effect.gen(function* () {
    const { session, token } = yield* CurrentSession
    const { current_password, new_password } = yield* read_body(
      PasswordChange,
      "{ current_password, new_password }",
    )
    const owner = yield* session_owner(session)
    // before the current password is checked: a refusal here costs no guess
    yield* refuse_weak_password(new_password, owner.username)
    const stored = yield* verified_password_hash(
      session.account_id,
      current_password,
      "the current password is wrong",
    )
    const password_hash = yield* hash_password(new_password)
    const database = yield* Database
    const repo = yield* SessionRepo
    // One transaction under the row lock: the hash must still be the one just
    // verified (two concurrent changes: the second gets 409), the caller's own
    // session must still exist (it is re-authenticated, the password was just
    // proven, and gets a new token), and the other sessions go with the old
    // password.
    const { revoked, rotated } = yield* database.transaction(
      Effect.gen(function* () {
        if ((yield* lock_password_hash(session.account_id, "update")) !== stored) {
          return yield* new HttpError({
            status: 409,
            message: "the password was changed meanwhile; try again",
          })
        }
        // a new token for this session: one stolen before the change dies with the old password
        const rotated = yield* prove_session(token)
        yield* db_query("change_password", (db) =>
          db.update(credential).set({ password_hash }).where(eq(credential.account_id, session.account_id)),
        )
        const revoked = yield* repo.revoke_others_for_account(session.account_id, rotated.session.id, {
          reason: "password_change",
        })
        return { revoked, rotated }
      }),
    )
    return yield* set_rotated_cookie(rotated)(HttpServerResponse.jsonUnsafe({ revoked }))
  }),
).pipe(answer_too_many_attempts)

const admin_sessions = with_session(
  Effect.gen(function* () {
    yield* require_admin((yield* CurrentSession).session)
    const sessions = yield* (yield* SessionRepo).list_all_active()
    return HttpServerResponse.jsonUnsafe({
      sessions: sessions.map(admin_session_view),
    })
  }),
)

/** An admin signs out every session of an account (their own included: the cookie goes too). */
const admin_revoke_account = with_session(
  Effect.gen(function* () {
    const { session } = yield* CurrentSession
    yield* require_admin(session)
    // as for signing out one's own other devices: a stolen admin cookie alone is not enough
    yield* require_fresh_session(session, FRESH_FOR_MS)
    const { id } = yield* HttpRouter.params
    const revoked = yield* (yield* SessionRepo)
      .revoke_all_for_account(id ?? "", { reason: "admin" })
      .pipe(Effect.catchTag("InvalidInput", () => Effect.succeed(0)))
    const response = HttpServerResponse.jsonUnsafe({ revoked })
    return id === session.account_id ? yield* clear_session_cookie(response) : response
  }),
)

/** Every route of the example app. */
export const Routes = Layer.mergeAll(
  HttpRouter.add("POST", "/api/signup", as_json_errors(same_origin_only(signup))),
  HttpRouter.add("POST", "/api/login", as_json_errors(same_origin_only(login))),
  HttpRouter.add("POST", "/api/logout", as_json_errors(same_origin_only(logout))),
  HttpRouter.add("GET", "/api/me", as_json_errors(me)),
  HttpRouter.add("GET", "/api/sessions", as_json_errors(my_sessions)),
  HttpRouter.add("DELETE", "/api/sessions/:id", as_json_errors(same_origin_only(revoke_one))),
  HttpRouter.add("POST", "/api/reauthenticate", as_json_errors(same_origin_only(reauthenticate))),
  HttpRouter.add("POST", "/api/sessions/revoke-others", as_json_errors(same_origin_only(revoke_others))),
  HttpRouter.add("POST", "/api/password", as_json_errors(same_origin_only(change_password))),
  HttpRouter.add("GET", "/api/admin/sessions", as_json_errors(admin_sessions)),
  HttpRouter.add(
    "POST",
    "/api/admin/accounts/:id/revoke",
    as_json_errors(same_origin_only(admin_revoke_account)),
  ),
)

/** Creates the example's own tables; run after the library's migrations. */
export const prepare_schema = create_credential_table.pipe(
  Effect.andThen(create_throttle_table),
  Effect.andThen(create_secret_table),
  Effect.asVoid,
)
