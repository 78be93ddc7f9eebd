// effect-session-repo: sessions, queries, the PostgreSQL layer and the schema.
// PGlite is in effect-session-repo/pglite, the HTTP helpers in
// effect-session-repo/http, so a service needing neither loads neither.
export { Database, type DatabaseShape } from "./db/database.js"
export { classify_sqlstate, DbError, DbErrorReason } from "./db/errors.js"
export { Db, type Drizzle, Tx } from "./db/handle.js"
/** Applies pending migrations on the provided `Database`. */
export { migrate } from "./db/migrate.js"
export { MIGRATIONS_FOLDER } from "./db/migrations.js"
export { type NotificationHandlers, Notifications, type NotificationsShape } from "./db/notifications.js"
export {
  layer_postgres,
  layer_postgres_from_config,
  layer_postgres_pool,
  type PoolOptions,
  type PostgresOptions,
} from "./db/postgres.js"
export { db_query } from "./db/query.js"
export { READ_RETRY_WINDOW_MS, retry_read } from "./db/read-retry.js"
export * from "./schema/index.js"
// Register by name, not through `export *`: a module augmentation of
// "effect-session-repo" reaches only a declaration the entry names itself.
export type { AccountId, Register, RegisteredSessionTable } from "./schema/register.js"
export {
  AUDIT_START,
  type AuditCursor,
  type AuditEntry,
  SessionAuditLog,
  type SessionAuditLogShape,
} from "./session/audit-log.js"
export {
  DEFAULT_CACHE_MAX_AGE_MS,
  DEFAULT_CACHE_MAX_ENTRIES,
  SessionCache,
  type SessionCacheOptions,
  type SessionCacheShape,
} from "./session/cache.js"
export { session_change_trigger_sql, session_changes_channel } from "./session/change-trigger.js"
export { layer_session_cleanup, session_cleanup_pass } from "./session/cleanup.js"
export { CurrentSessionTable, layer_current_session_table } from "./session/current-session-table.js"
export { MAX_USER_AGENT_LENGTH, type SessionDevice } from "./session/device.js"
export {
  AccountNotFound,
  InvalidInput,
  SessionNotFresh,
  SessionRejected,
  SessionRejectionReason,
} from "./session/errors.js"
export {
  type EndReason,
  REVOKE_REASONS,
  type RevokeReason,
  SESSION_EVENTS_CAPACITY,
  type SessionEvent,
  type SessionEventKind,
  SessionEvents,
  type SessionEventsShape,
} from "./session/events.js"
export { session_rejection } from "./session/expiry.js"
export { require_fresh_session } from "./session/freshness.js"
export { MAX_LIST_LIMIT } from "./session/input.js"
export {
  DEFAULT_SESSION_POLICY,
  type IpStorage,
  layer_session_policy,
  layer_session_policy_from_config,
  make_session_policy,
  SESSION_POLICY_PRESETS,
  SessionPolicy,
  type SessionPolicyInput,
  type SessionPolicyPreset,
  type SessionPolicyShape,
  session_policy_config,
} from "./session/policy.js"
export {
  query_create_session,
  query_session_cleanup_expired,
  query_session_enforce_limit,
  query_session_get_valid,
  query_session_list_all_active,
  query_session_list_for_account,
  query_session_reauthenticate,
  query_session_revoke_all_for_account,
  query_session_revoke_by_hash,
  query_session_revoke_for_account,
  query_session_revoke_others_for_account,
  query_session_rotate,
  query_session_touch,
  type RevokeOptions,
} from "./session/queries.js"
export {
  type Authenticated,
  type CreatedSession,
  SessionRepo,
  type SessionRepoShape,
  type TokenInput,
} from "./session/repo.js"
export {
  MAX_PENDING_TOUCHES,
  SessionTouches,
  type SessionTouchesShape,
  session_touch_fire_and_forget,
} from "./session/touch.js"
export {
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_MAX_PER_ACCOUNT,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  generate_session_token,
  HASH_PREFIX_LENGTH,
  hash_prefix,
  hash_session_token,
  is_session_token,
  is_session_token_hash,
  session_prefix,
} from "./token.js"
