// The operations npm run bench compares, each as variants that open pools of
// their own: (a) SessionRepo, (b) the same SQL hand-written on raw pg (named
// prepared statements), (c) for validate, the origin module's select plus
// unconditional update. npm run bench:profile profiles the same variants.
import { Effect, ManagedRuntime, Redacted } from "effect"
import type pg from "pg"
import {
  AUTH_SESSION_LIFETIME_MS,
  generate_session_token,
  hash_session_token,
  layer_postgres,
  SessionRepo,
} from "../src/index.ts"
import { pooled_transaction, raw_pool, repo_on } from "./harness.ts"

/** Connections in every variant's pool. */
export const POOL = 10
/** The data the variants run on (seed_sessions). */
export const SEED = { accounts: 10_000, sessions: 100_000 }

/** The operations, in the order they run: revoke last, as it deletes the seeded sessions. */
export const OPERATIONS = [
  "validate",
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
}
export type Variant = readonly [name: string, open: () => Opened]

const COLUMNS = "id, account_id, created_at, expires_at, last_seen_at"

/**
 * The SQL of the repo's statements, hand-written, as named prepared
 * statements: each is parsed once per connection, as the repo's are, and then
 * costs one round trip. (A parameter per value, as Drizzle numbers them.)
 */
const RAW = {
  get_valid: {
    name: "raw_get_valid",
    text: `SELECT ${COLUMNS} FROM auth_session WHERE id = $1 AND expires_at > $2`,
  },
  touch_always: { name: "raw_touch_always", text: "UPDATE auth_session SET last_seen_at = $1 WHERE id = $2" },
  insert: {
    name: "raw_insert",
    text: `INSERT INTO auth_session (id, account_id, created_at, expires_at, last_seen_at)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING *`,
  },
  lock_account: { name: "raw_lock_account", text: "SELECT id FROM account WHERE id = $1 FOR NO KEY UPDATE" },
  evict: {
    name: "raw_evict",
    text: `DELETE FROM auth_session WHERE account_id = $1 AND (expires_at <= $2 OR id IN (
             SELECT id FROM auth_session WHERE account_id = $3 AND expires_at > $4
             ORDER BY id = $5 DESC, created_at DESC, id DESC OFFSET $6)) RETURNING id`,
  },
  list_for_account: {
    name: "raw_list_for_account",
    text: `SELECT ${COLUMNS} FROM auth_session
           WHERE account_id = $1 AND expires_at > $2
           ORDER BY created_at DESC, id DESC LIMIT $3`,
  },
  list_all_active: {
    name: "raw_list_all_active",
    text: `SELECT s.id, s.account_id, s.created_at, s.expires_at, s.last_seen_at, a.username
           FROM auth_session s JOIN account a ON a.id = s.account_id
           WHERE s.expires_at > $1 ORDER BY s.last_seen_at DESC, s.id DESC LIMIT $2`,
  },
  revoke: { name: "raw_revoke", text: "DELETE FROM auth_session WHERE id = $1 RETURNING id" },
} as const

/** Runs one of the RAW statements on a pool or a pooled connection. */
const raw = (client: pg.Pool | pg.PoolClient, statement: keyof typeof RAW, values: Array<unknown>) =>
  client.query({ ...RAW[statement], values })

/** The repo's validation read, hand-written on raw pg. */
export const raw_get_valid = (pool: pg.Pool, token_hash: string) =>
  raw(pool, "get_valid", [token_hash, new Date()])

/** The repo's create with limit (insert, account lock, eviction past 5), hand-written on raw pg. */
export const raw_create_session = (pool: pg.Pool, account_id: string) => {
  const id = hash_session_token(Effect.runSync(generate_session_token))
  const now = new Date()
  return pooled_transaction(pool, async (client) => {
    await raw(client, "insert", [
      id,
      account_id,
      now,
      new Date(now.getTime() + AUTH_SESSION_LIFETIME_MS),
      now,
    ])
    await raw(client, "lock_account", [account_id])
    return raw(client, "evict", [account_id, now, account_id, now, id, 5])
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
    (make_op: (repo: SessionRepo["Service"]) => Effect.Effect<unknown, unknown>): (() => Opened) =>
    () => {
      const runtime = ManagedRuntime.make(
        repo_on(
          layer_postgres({
            url: Redacted.make(url),
            pool_size: POOL,
            ...(on_statement === undefined ? {} : { on_statement }),
          }),
        ),
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
  const random_account = () => accounts[Math.floor(Math.random() * accounts.length)] as string
  let next_revoke = 0
  const revoke_token = () => tokens[next_revoke++ % tokens.length] as string

  return {
    validate: [
      ["a: SessionRepo", with_repo((repo) => repo.validate(random_token()))],
      ["b: raw pg", with_raw((pool) => () => raw_get_valid(pool, hash_session_token(random_token())))],
      [
        "c: origin (select + update)",
        with_raw((pool) => async () => {
          const id = hash_session_token(random_token())
          const now = new Date()
          await raw(pool, "get_valid", [id, now])
          await raw(pool, "touch_always", [now, id])
        }),
      ],
    ],
    "list for account": [
      ["a: SessionRepo", with_repo((repo) => repo.list_for_account(random_account(), { limit: 50 }))],
      [
        "b: raw pg",
        with_raw((pool) => () => raw(pool, "list_for_account", [random_account(), new Date(), 50])),
      ],
    ],
    "list all active": [
      ["a: SessionRepo", with_repo((repo) => repo.list_all_active({ limit: 50 }))],
      ["b: raw pg", with_raw((pool) => () => raw(pool, "list_all_active", [new Date(), 50]))],
    ],
    "create with limit": [
      ["a: SessionRepo", with_repo((repo) => repo.create_session(random_account()))],
      ["b: raw pg", with_raw((pool) => () => raw_create_session(pool, random_account()))],
    ],
    // once every seeded session is revoked, the DELETEs find no row
    revoke: [
      ["a: SessionRepo", with_repo((repo) => repo.revoke(revoke_token()))],
      ["b: raw pg", with_raw((pool) => () => raw(pool, "revoke", [hash_session_token(revoke_token())]))],
    ],
  }
}
