// The operations npm run bench compares, each as variants that open pools of
// their own: (a) SessionRepo, (b) the same SQL hand-written on raw postgres.js,
// (c) for validate, the origin module's select plus unconditional update.
// npm run bench:profile profiles the same variants.
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import postgres from "postgres"
import {
  AUTH_SESSION_LIFETIME_MS,
  generate_session_token,
  hash_session_token,
  layer_postgres,
  SessionRepo,
} from "../src/index.ts"

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

/** The repo's validation read, hand-written on raw postgres.js. */
export const raw_get_valid = (sql: postgres.Sql, token_hash: string) =>
  sql`SELECT ${sql.unsafe(COLUMNS)} FROM auth_session WHERE id = ${token_hash} AND expires_at > ${new Date()}`

/** The repo's create with limit (insert, account lock, eviction past 5), hand-written on raw postgres.js. */
export const raw_create_session = (sql: postgres.Sql, account_id: string) => {
  const id = hash_session_token(Effect.runSync(generate_session_token))
  const now = new Date()
  return sql.begin(async (tx) => {
    await tx`INSERT INTO auth_session (id, account_id, created_at, expires_at, last_seen_at)
             VALUES (${id}, ${account_id}, ${now}, ${new Date(now.getTime() + AUTH_SESSION_LIFETIME_MS)}, ${now})
             RETURNING *`
    await tx`SELECT id FROM account WHERE id = ${account_id} FOR NO KEY UPDATE`
    await tx`DELETE FROM auth_session WHERE account_id = ${account_id} AND (expires_at <= ${now} OR id IN (
               SELECT id FROM auth_session WHERE account_id = ${account_id} AND expires_at > ${now}
               ORDER BY id = ${id} DESC, created_at DESC, id DESC OFFSET ${5})) RETURNING id`
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
        SessionRepo.layer.pipe(
          Layer.provideMerge(
            layer_postgres({
              url: Redacted.make(url),
              pool_size: POOL,
              ...(on_statement === undefined ? {} : { on_statement }),
            }),
          ),
        ),
      )
      return { op: () => runtime.runPromise(SessionRepo.use(make_op)), close: () => runtime.dispose() }
    }
  const with_raw =
    (make_op: (sql: postgres.Sql) => () => Promise<unknown>): (() => Opened) =>
    () => {
      const sql = postgres(url, { max: POOL, onnotice: () => {} })
      return { op: make_op(sql), close: () => sql.end() }
    }

  const { accounts, tokens } = seeded
  const random_token = () => tokens[Math.floor(Math.random() * tokens.length)] as string
  const random_account = () => accounts[Math.floor(Math.random() * accounts.length)] as string
  let next_revoke = 0
  const revoke_token = () => tokens[next_revoke++ % tokens.length] as string

  return {
    validate: [
      ["a: SessionRepo", with_repo((repo) => repo.validate(random_token()))],
      ["b: raw postgres.js", with_raw((sql) => () => raw_get_valid(sql, hash_session_token(random_token())))],
      [
        "c: origin (select + update)",
        with_raw((sql) => async () => {
          const id = hash_session_token(random_token())
          const now = new Date()
          await sql`SELECT ${sql.unsafe(COLUMNS)} FROM auth_session WHERE id = ${id} AND expires_at > ${now}`
          await sql`UPDATE auth_session SET last_seen_at = ${now} WHERE id = ${id}`
        }),
      ],
    ],
    "list for account": [
      ["a: SessionRepo", with_repo((repo) => repo.list_for_account(random_account(), { limit: 50 }))],
      [
        "b: raw postgres.js",
        with_raw(
          (sql) => () =>
            sql`SELECT ${sql.unsafe(COLUMNS)} FROM auth_session
                WHERE account_id = ${random_account()} AND expires_at > ${new Date()}
                ORDER BY created_at DESC, id DESC LIMIT ${50}`,
        ),
      ],
    ],
    "list all active": [
      ["a: SessionRepo", with_repo((repo) => repo.list_all_active({ limit: 50 }))],
      [
        "b: raw postgres.js",
        with_raw(
          (sql) => () =>
            sql`SELECT s.id, s.account_id, s.created_at, s.expires_at, s.last_seen_at, a.username
                FROM auth_session s JOIN account a ON a.id = s.account_id
                WHERE s.expires_at > ${new Date()} ORDER BY s.last_seen_at DESC, s.id DESC LIMIT ${50}`,
        ),
      ],
    ],
    "create with limit": [
      ["a: SessionRepo", with_repo((repo) => repo.create_session(random_account()))],
      ["b: raw postgres.js", with_raw((sql) => () => raw_create_session(sql, random_account()))],
    ],
    // once every seeded session is revoked, the DELETEs find no row
    revoke: [
      ["a: SessionRepo", with_repo((repo) => repo.revoke(revoke_token()))],
      [
        "b: raw postgres.js",
        with_raw(
          (sql) => () =>
            sql`DELETE FROM auth_session WHERE id = ${hash_session_token(revoke_token())} RETURNING id`,
        ),
      ],
    ],
  }
}
