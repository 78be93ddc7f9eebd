import { randomUUID } from "node:crypto"
import { eq, getTableColumns, inArray, sql } from "drizzle-orm"
import { pgTable, text } from "drizzle-orm/pg-core"
import { Clock, Deferred, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import {
  type Account,
  AUTH_SESSION_LIFETIME_MS,
  account,
  auth_session,
  Database,
  type Db,
  db_query,
  generate_session_token,
  hash_session_token,
  query_create_session,
  Tx,
} from "../../src/index.ts"
import { sent_statements } from "./backends.ts"

/** Runs a Drizzle query on `Db` (the library's `db_query`); test-only, so failures are defects. */
export const on_db = <A>(f: (db: Db["Service"]) => Promise<A>): Effect.Effect<A, never, Db> =>
  Effect.orDie(db_query("test", f))

export const create_account = (username = `user-${randomUUID()}`): Effect.Effect<Account, never, Db> =>
  on_db((db) => db.insert(account).values({ username }).returning()).pipe(
    Effect.map((rows) => rows[0] as Account),
  )

/** A fresh account id that has no row. */
export const missing_account_id = (): string => randomUUID()

/** A session row as the package returns one (`AuthSession`): `last_seen_hour` is the admin index's own. */
const { last_seen_hour: _, ...session_columns } = getTableColumns(auth_session)

export const session_rows = (account_id: string) =>
  on_db((db) => db.select(session_columns).from(auth_session).where(eq(auth_session.account_id, account_id)))

export const session_row = (id: string) =>
  on_db((db) => db.select(session_columns).from(auth_session).where(eq(auth_session.id, id))).pipe(
    Effect.map((rows) => rows[0]),
  )

/** Empties both tables, for tests whose queries span every account. */
export const truncate_all = on_db((db) => db.execute(sql`TRUNCATE account CASCADE`))

/**
 * Counts writes to auth_session rows with a trigger, so a test can assert how
 * many UPDATEs really reached the database (the same on PGlite and PostgreSQL).
 */
export const install_write_counter = on_db(async (db) => {
  await db.execute(sql`CREATE TABLE IF NOT EXISTS test_session_writes (session_id text NOT NULL)`)
  await db.execute(sql`
    CREATE OR REPLACE FUNCTION test_count_session_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO test_session_writes VALUES (NEW.id); RETURN NULL; END $$`)
  await db.execute(sql`
    CREATE OR REPLACE TRIGGER test_count_session_write AFTER UPDATE ON auth_session
    FOR EACH ROW EXECUTE FUNCTION test_count_session_write()`)
})

const test_session_writes = pgTable("test_session_writes", { session_id: text().notNull() })

/** UPDATEs of this session since `install_write_counter`. */
export const write_count = (session_id: string) =>
  on_db((db) => db.$count(test_session_writes, eq(test_session_writes.session_id, session_id)))

/** Puts the TestClock at a fixed instant, so times in assertions read as dates. */
export const set_time = (iso: string) => TestClock.setTime(Date.parse(iso))

export const now_ms = Clock.currentTimeMillis

const test_delete_statements = pgTable("test_delete_statements", { at: text().notNull() })

/** Counts DELETE statements on auth_session (not rows), to see batching. */
export const install_delete_statement_counter = on_db(async (db) => {
  await db.execute(sql`CREATE TABLE IF NOT EXISTS test_delete_statements (at text NOT NULL)`)
  await db.execute(sql`
    CREATE OR REPLACE FUNCTION test_count_delete_statement() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO test_delete_statements VALUES ('x'); RETURN NULL; END $$`)
  await db.execute(sql`
    CREATE OR REPLACE TRIGGER test_count_delete_statement AFTER DELETE ON auth_session
    FOR EACH STATEMENT EXECUTE FUNCTION test_count_delete_statement()`)
  await db.execute(sql`TRUNCATE test_delete_statements`)
})

export const delete_statement_count = on_db((db) => db.$count(test_delete_statements))

/** A session made with the query layer: created now, expiring after `lifetime_ms`. */
export const insert_session = (account_id: string, lifetime_ms: number = AUTH_SESSION_LIFETIME_MS) =>
  Effect.gen(function* () {
    const token = yield* generate_session_token
    const now = yield* Clock.currentTimeMillis
    const session = yield* query_create_session(
      hash_session_token(token),
      account_id,
      new Date(now + lifetime_ms),
    )
    return { token, session }
  })

/** Runs `effect` and returns the statements it sent (those of background touches included). */
export const statements_of = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const start = sent_statements.length
    const result = yield* effect
    return { result, statements: sent_statements.slice(start) }
  })

export const count_matching = (statements: ReadonlyArray<string>, pattern: RegExp): number =>
  statements.filter((statement) => pattern.test(statement)).length

/** An UPDATE of auth_session, alone or with its audit rows (the change in a CTE before them). */
export const SESSION_UPDATE = /^(with "changed" as \()?update "auth_session"/

/**
 * Runs `lock` in a transaction that stays open until the returned effect
 * releases it, so whatever `lock` locked stays locked meanwhile. On PGlite the
 * open transaction also holds the only connection.
 */
export const hold_in_transaction = (lock: (tx: Tx["Service"]) => Promise<unknown>) =>
  Effect.gen(function* () {
    const database = yield* Database
    const locked = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const holder = yield* Effect.forkChild(
      database.transaction(
        Effect.gen(function* () {
          yield* Tx.use((tx) => Effect.promise(() => lock(tx)))
          yield* Deferred.succeed(locked, undefined)
          yield* Deferred.await(release)
        }),
      ),
    )
    yield* Deferred.await(locked)
    return Deferred.succeed(release, undefined).pipe(Effect.andThen(Fiber.join(holder)))
  })

/**
 * Returns once `count` statements wait for a row lock (PostgreSQL only),
 * polling every 10 ms of real time: the TestClock does not move by itself.
 */
export const until_waiting_on_locks = (count: number): Effect.Effect<void, never, Db> =>
  on_db((db) =>
    db.execute(
      sql`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')`,
    ),
  ).pipe(
    Effect.flatMap((result) =>
      Number((result as unknown as { rows: Array<{ n: number }> }).rows[0]?.n) >= count
        ? Effect.void
        : Effect.andThen(
            Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10))),
            Effect.suspend(() => until_waiting_on_locks(count)),
          ),
    ),
  )

/** Locks the given sessions FOR UPDATE until released (see `hold_in_transaction`). */
export const hold_session_locks = (ids: ReadonlyArray<string>) =>
  hold_in_transaction((tx) =>
    tx
      .select({ id: auth_session.id })
      .from(auth_session)
      .where(inArray(auth_session.id, [...ids]))
      .for("update"),
  )

/**
 * Runs `effect` while every `UPDATE` or `DELETE` statement on auth_session
 * fails (a trigger raises), to inject a database failure at that point.
 */
export const with_refused = <A, E, R>(statement: "UPDATE" | "DELETE", effect: Effect.Effect<A, E, R>) => {
  const trigger = sql.raw(`test_refuse_${statement.toLowerCase()}`)
  const refuse = on_db(async (db) => {
    await db.execute(sql`
      CREATE OR REPLACE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'refused by the test'; END $$`)
    await db.execute(sql`
      CREATE OR REPLACE TRIGGER ${trigger} BEFORE ${sql.raw(statement)} ON auth_session
      FOR EACH STATEMENT EXECUTE FUNCTION test_refuse()`)
  })
  const allow = on_db((db) => db.execute(sql`DROP TRIGGER IF EXISTS ${trigger} ON auth_session`))
  return Effect.andThen(refuse, effect).pipe(Effect.ensuring(allow))
}
