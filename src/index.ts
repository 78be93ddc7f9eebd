export { Database, type DatabaseShape } from "./db/database.ts"
export { classify_sqlstate, DbError, DbErrorReason } from "./db/errors.ts"
export { layer_database_from_config } from "./db/from-config.ts"
export { Db, type Drizzle, Tx } from "./db/handle.ts"
/** Applies pending migrations on the provided `Database`. */
export { migrate } from "./db/migrate.ts"
export { MIGRATIONS_FOLDER } from "./db/migrations.ts"
export { layer_pglite, type PgliteOptions } from "./db/pglite.ts"
export { layer_postgres, layer_postgres_from_config, type PostgresOptions } from "./db/postgres.ts"
export { READ_RETRY_WINDOW_MS, retry_read } from "./db/read-retry.ts"
export {
  clear_session_cookie,
  SessionCookie,
  type SessionCookieShape,
  set_session_cookie,
} from "./http/cookie.ts"
export { CurrentSession, request_session_token, with_session } from "./http/session.ts"
export {
  type Account,
  type AuthSession,
  type AuthSessionWithUsername,
  account,
  auth_session,
} from "./schema.ts"
export { layer_session_cleanup, session_cleanup_pass } from "./session/cleanup.ts"
export { AccountNotFound, InvalidInput } from "./session/errors.ts"
export { MAX_LIST_LIMIT } from "./session/input.ts"
export {
  DEFAULT_SESSION_POLICY,
  layer_session_policy,
  make_session_policy,
  SessionPolicy,
  type SessionPolicyShape,
} from "./session/policy.ts"
export {
  query_create_session,
  query_session_cleanup_expired,
  query_session_enforce_limit,
  query_session_get_valid,
  query_session_list_all_active,
  query_session_list_for_account,
  query_session_revoke_all_for_account,
  query_session_revoke_by_hash,
  query_session_revoke_for_account,
  query_session_revoke_others_for_account,
  query_session_touch,
  session_touch_due,
  type TouchDue,
} from "./session/queries.ts"
export {
  type Authenticated,
  type CreatedSession,
  SessionRepo,
  type SessionRepoShape,
  type TokenInput,
} from "./session/repo.ts"
export {
  MAX_PENDING_TOUCHES,
  SessionTouches,
  type SessionTouchesShape,
  session_touch_fire_and_forget,
} from "./session/touch.ts"
export {
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_MAX_PER_ACCOUNT,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  generate_session_token,
  hash_prefix,
  hash_session_token,
  is_session_token,
  is_session_token_hash,
} from "./token.ts"
