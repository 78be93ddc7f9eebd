// The operations npm run bench compares, each as variants that open pools of
// their own: (a) SessionRepo; (b) raw pg sending the repo's own statements,
// their SQL text and values taken from the statements themselves (named
// prepared statements, the same pool size), so a baseline cannot drift from
// the code it measures (test/bench-baselines.test.ts checks the wire); for
// validate also (c) the same statement on raw postgres.js, which pipelines;
// for create and revoke (c) SessionRepo on the same table without its audit
// table: a/c is what the audit row costs. "validate, cached" is SessionRepo
// with its validation cache (every seeded session read once, then hits)
// against the same raw read; "validate, cache misses" is SessionRepo with a
// cache of one entry (each validation looks up, reads the row, keeps it)
// against the same raw read.
import { Effect, ManagedRuntime, Redacted } from "effect"
import type pg from "pg"
import postgres from "postgres"
import { cached_repo_on, pooled_transaction, raw_pool, repo_on, restore_seeded_sessions } from "./harness.ts"
import type { Statement } from "./package.ts"
import {
  account,
  auth_session,
  authenticated_times,
  DEFAULT_SESSION_POLICY,
  definition_of,
  generate_session_token,
  hash_session_token,
  layer_postgres,
  live_bounds,
  type SessionCacheOptions,
  SessionRepo,
  session_statements,
  session_table,
} from "./package.ts"

/** Connections in every variant's pool. */
export const POOL = 10
/** Sessions "validate, cached" draws from: those in use at any one time. */
export const ACTIVE_SESSIONS = 10_000

/** The data the variants run on (seed_sessions). */
export const SEED = { accounts: 10_000, sessions: 100_000 }

/** The operations, in the order they run: revoke last, as it deletes the seeded sessions. */
export const OPERATIONS = [
  "validate",
  "validate, cached",
  "validate, cache misses",
  "list for account",
  "list all active",
  "create with limit",
  "revoke",
] as const
export type Operation = (typeof OPERATIONS)[number]

export const is_operation = (name: string): name is Operation =>
  (OPERATIONS as ReadonlyArray<string>).includes(name)

export interface Opened {
  readonly op: () => Promise<unknown>
  readonly close: () => Promise<unknown>
  /** Run before each measured slice, not timed: puts back the data `op` used up. */
  readonly restore?: () => Promise<unknown>
}
export type Variant = readonly [name: string, open: () => Opened]

/** The standalone session table defined without an audit table (the same rows, no audit inserts). */
const unaudited_sessions = session_table({
  account_id: account.id,
  label: account.username,
}) as typeof auth_session

/** The repo's statements on the standalone table, as SessionRepo.layer(auth_session) sends them. */
export const statements = session_statements(definition_of(auth_session))
const policy = DEFAULT_SESSION_POLICY

/** The repo's statement `statement`, its SQL and values as the repo sends them, as a named prepared statement on raw pg. */
export const raw = <Params>(
  client: pg.Pool | pg.PoolClient,
  statement: Statement<Params, unknown>,
  params: Params,
) =>
  client.query({
    name: `raw_${statement.sql.name}`,
    text: statement.sql.text,
    values: statement.values(params),
  })

/** The parameters of each raw operation at `now`, as the repo's operations pass them (src/session/operations.ts), with SessionRepo's default limits. */
export const raw_params = {
  validate: (token: string) => ({ id: hash_session_token(token) }),
  list_for_account: (account_id: string, now = Date.now()) => ({
    account_id,
    limit: 50,
    ...live_bounds(policy, now),
  }),
  list_all_active: (now = Date.now()) => ({ limit: 200, ...live_bounds(policy, now), idle_hour: null }),
  create: (account_id: string, id: string, now = Date.now()) => {
    const times = authenticated_times(policy, now)
    return {
      insert: {
        id,
        account_id,
        now: times.authenticated_at,
        seen_hour: times.seen_hour,
        expires_at: times.expires_at,
        absolute_expires_at: times.absolute_expires_at,
        client_ip: null,
        user_agent: null,
      },
      lock: { account_id },
      evict: { account_id, max_sessions: policy.max_sessions, keep: id, ...live_bounds(policy, now) },
    }
  },
  revoke: (token: string, now = Date.now()) => ({
    id: hash_session_token(token),
    now: new Date(now),
    reason: "logout",
  }),
}

/** The repo's create with limit on raw pg: insert, account lock, eviction, in one transaction. */
export const raw_create_session = (pool: pg.Pool, account_id: string) => {
  const params = raw_params.create(account_id, hash_session_token(Effect.runSync(generate_session_token)))
  return pooled_transaction(pool, async (client) => {
    await raw(client, statements.create_session, params.insert)
    await raw(client, statements.session_enforce_limit_lock, params.lock)
    return raw(client, statements.session_enforce_limit, params.evict)
  })
}

/**
 * Every operation's variants on the database at `url`, seeded with `accounts`
 * and `tokens` (seed_sessions). `on_statement` sees each statement the repo sends.
 */
export const bench_operations = (
  url: string,
  seeded: { readonly accounts: ReadonlyArray<string>; readonly tokens: ReadonlyArray<string> },
  on_statement?: () => void,
): Record<Operation, ReadonlyArray<Variant>> => {
  const with_repo =
    (
      make_op: (repo: SessionRepo["Service"]) => Effect.Effect<unknown, unknown>,
      table: typeof auth_session | { readonly cached: SessionCacheOptions } = auth_session,
    ): (() => Opened) =>
    () => {
      const database = layer_postgres({
        url: Redacted.make(url),
        pool_size: POOL,
        ...(on_statement === undefined ? {} : { on_statement }),
      })
      const runtime = ManagedRuntime.make(
        "cached" in table ? cached_repo_on(database, table.cached) : repo_on(database, table),
      )
      return { op: () => runtime.runPromise(SessionRepo.use(make_op)), close: () => runtime.dispose() }
    }
  const with_raw =
    (make_op: (pool: pg.Pool) => () => Promise<unknown>): (() => Opened) =>
    () => {
      const pool = raw_pool(url, POOL)
      return { op: make_op(pool), close: () => pool.end() }
    }

  const { accounts, tokens } = seeded
  const random_token = () => tokens[Math.floor(Math.random() * tokens.length)] as string
  // a service's active sessions: the cache holds them all after the warm-up
  const active_token = () =>
    tokens[Math.floor(Math.random() * Math.min(tokens.length, ACTIVE_SESSIONS))] as string
  const random_account = () => accounts[Math.floor(Math.random() * accounts.length)] as string
  let next_revoke = 0
  const revoke_token = () => tokens[next_revoke++ % tokens.length] as string
  // each slice revokes sessions that exist (restored before it), fewer than were seeded
  const restoring =
    (open: () => Opened): (() => Opened) =>
    () => {
      const opened = open()
      const admin = raw_pool(url, 1)
      return {
        ...opened,
        restore: () => restore_seeded_sessions(admin),
        close: () => Promise.all([opened.close(), admin.end()]),
      }
    }

  return {
    validate: [
      ["a: SessionRepo", with_repo((repo) => repo.validate(random_token()))],
      [
        "b: raw pg",
        with_raw((pool) => () => raw(pool, statements.session_get, raw_params.validate(random_token()))),
      ],
      [
        "c: raw postgres.js",
        () => {
          const sql = postgres(url, { max: POOL, onnotice: () => {} })
          const { text } = statements.session_get.sql
          return {
            op: () =>
              sql.unsafe(
                text,
                statements.session_get.values(raw_params.validate(random_token())) as Array<string>,
                { prepare: true },
              ),
            close: () => sql.end(),
          }
        },
      ],
    ],
    "validate, cached": [
      ["a: SessionRepo, cached", with_repo((repo) => repo.validate(active_token()), { cached: {} })],
      [
        "b: raw pg",
        with_raw((pool) => () => raw(pool, statements.session_get, raw_params.validate(active_token()))),
      ],
    ],
    "validate, cache misses": [
      [
        "a: SessionRepo, cache of one",
        with_repo((repo) => repo.validate(random_token()), { cached: { max_entries: 1 } }),
      ],
      [
        "b: raw pg",
        with_raw((pool) => () => raw(pool, statements.session_get, raw_params.validate(random_token()))),
      ],
    ],
    "list for account": [
      ["a: SessionRepo", with_repo((repo) => repo.list_for_account(random_account()))],
      [
        "b: raw pg",
        with_raw(
          (pool) => () =>
            raw(pool, statements.session_list_for_account, raw_params.list_for_account(random_account())),
        ),
      ],
    ],
    "list all active": [
      ["a: SessionRepo", with_repo((repo) => repo.list_all_active())],
      [
        "b: raw pg",
        with_raw((pool) => () => raw(pool, statements.session_list_all_active, raw_params.list_all_active())),
      ],
    ],
    "create with limit": [
      ["a: SessionRepo", with_repo((repo) => repo.create_session(random_account()))],
      ["b: raw pg", with_raw((pool) => () => raw_create_session(pool, random_account()))],
      [
        "c: SessionRepo, no audit table",
        with_repo((repo) => repo.create_session(random_account()), unaudited_sessions),
      ],
    ],
    revoke: [
      ["a: SessionRepo", restoring(with_repo((repo) => repo.revoke(revoke_token())))],
      [
        "b: raw pg",
        restoring(
          with_raw(
            (pool) => () => raw(pool, statements.session_revoke_by_hash, raw_params.revoke(revoke_token())),
          ),
        ),
      ],
      [
        "c: SessionRepo, no audit table",
        restoring(with_repo((repo) => repo.revoke(revoke_token()), unaudited_sessions)),
      ],
    ],
  }
}
