import { assert, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Deferred, Effect, Exit, Fiber, Layer, Stream } from "effect"
import { TestClock } from "effect/testing"
import {
  AUDIT_START,
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  type AuditCursor,
  type AuditEntry,
  auth_session,
  Database,
  type Db,
  SessionAuditLog,
  type SessionEvent,
  SessionEvents,
  SessionRepo,
  SessionTouches,
  session_prefix,
} from "../src/index.ts"
import { backends, postgres_backend, report_skipped_postgres } from "./support/backends.ts"
import { create_account, on_db, session_rows } from "./support/fixtures.ts"

const TOKEN = /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/
const HASH = /[0-9a-f]{64}/

/** The subscriber's next `count` events. */
const next_events = (events: Stream.Stream<SessionEvent>, count: number) =>
  Effect.map(Stream.runCollect(Stream.take(events, count)), (chunk) => Array.from(chunk))

/**
 * Waits until every transaction running now, on the whole server, has ended:
 * readers of the audit log see a row only then (transaction ids are the
 * server's, so another database's work on it delays them too).
 */
const settled = on_db(async (db) => {
  const rows = async <Row>(query: ReturnType<typeof sql>) =>
    ((await db.execute(query)) as unknown as { rows: Array<Row> }).rows
  const [now] = await rows<{ next: string }>(
    sql`SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS next`,
  )
  const next = String(now?.next)
  for (;;) {
    const [check] = await rows<{ ended: boolean }>(
      sql`SELECT pg_snapshot_xmin(pg_current_snapshot()) >= ${next}::xid8 AS ended`,
    )
    if (check?.ended === true) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
})

/** Every audit entry past `cursor` once all work so far has ended, and the cursor past them. */
const read_to_end = (
  cursor: AuditCursor,
): Effect.Effect<{ entries: Array<AuditEntry>; cursor: AuditCursor }, unknown, SessionAuditLog | Db> =>
  Effect.gen(function* () {
    yield* settled
    const log = yield* SessionAuditLog
    const entries: Array<AuditEntry> = []
    while (true) {
      const page = yield* log.read(cursor, { limit: 50 })
      entries.push(...page.entries)
      cursor = page.cursor
      if (page.entries.length < 50) return { entries, cursor }
    }
  })

const end_of_log = Effect.map(read_to_end(AUDIT_START), ({ cursor }) => cursor)

const with_audit_log = <A>(backend_layer: Layer.Layer<A>) =>
  SessionAuditLog.layer.pipe(Layer.provideMerge(backend_layer))

for (const backend of backends) {
  layer(with_audit_log(backend.layer))(`session events and the audit log on ${backend.name}`, (it) => {
    it.effect("every kind of change tells its event once committed, and its audit row records the same", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const touches = yield* SessionTouches
          const start = yield* end_of_log
          const events = yield* (yield* SessionEvents).subscribe
          const owner = yield* create_account()
          const device = { ip: "203.0.113.9", user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0" }
          // a second apart, so the limit's order (newest first) is certain
          const later = TestClock.adjust(1000)
          const a = yield* repo.create_session(owner.id, { device })
          const b = yield* Effect.andThen(later, repo.create_session(owner.id))
          const c = yield* Effect.andThen(later, repo.create_session(owner.id))
          const d = yield* Effect.andThen(later, repo.create_session(owner.id, { max_sessions: 3 }))
          // b is due an extension
          yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS + 1000)
          assert.isTrue((yield* repo.authenticate(b.token)).extended)
          yield* repo.reauthenticate(c.token)
          const c2 = yield* repo.rotate(c.token)
          assert.isTrue(yield* repo.revoke_for_account(b.session.id, owner.id))
          yield* repo.revoke(c2.token)
          const e = yield* repo.create_session(owner.id)
          const f = yield* repo.create_session(owner.id)
          assert.strictEqual(
            yield* repo.revoke_others_for_account(owner.id, d.session.id, { reason: "password_change" }),
            2,
          )
          assert.strictEqual(yield* repo.revoke_all_for_account(owner.id, { reason: "admin" }), 1)
          const g = yield* repo.create_session(owner.id)
          yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS + 1)
          assert.strictEqual((yield* Effect.flip(repo.authenticate(g.token))).reason, "expired")
          yield* touches.await_idle
          // a second sight of it tells nothing more: it is gone
          assert.strictEqual((yield* Effect.flip(repo.authenticate(g.token))).reason, "unknown")
          const h = yield* repo.create_session(owner.id)
          yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS + 1)
          assert.isAtLeast(yield* repo.cleanup_expired(), 1)
          assert.deepStrictEqual(yield* session_rows(owner.id), [])

          const expected: Array<[string, string | undefined, string | undefined]> = [
            ["created", a.session.id, undefined],
            ["created", b.session.id, undefined],
            ["created", c.session.id, undefined],
            ["created", d.session.id, undefined],
            ["evicted", a.session.id, undefined],
            ["extended", b.session.id, undefined],
            ["reauthenticated", c.session.id, undefined],
            ["rotated", c.session.id, undefined],
            ["revoked", b.session.id, "owner"],
            ["revoked", c2.session.id, "logout"],
            ["created", e.session.id, undefined],
            ["created", f.session.id, undefined],
            ["revoked_others", d.session.id, "password_change"],
            ["revoked_all", undefined, "admin"],
            ["created", g.session.id, undefined],
            ["ended", g.session.id, "expired"],
            ["created", h.session.id, undefined],
            ["swept", undefined, undefined],
          ]
          const told = yield* next_events(events, expected.length)
          assert.deepStrictEqual(
            told.map((event) => [
              event.kind,
              "session" in event ? event.session : undefined,
              "reason" in event ? event.reason : undefined,
            ]),
            expected.map(([kind, id, reason]) => [
              kind,
              id === undefined ? undefined : session_prefix(id),
              reason,
            ]),
          )
          const [created_a] = told
          assert.deepInclude(created_a, {
            account_id: owner.id,
            client_ip: "203.0.113.9",
            user_agent: device.user_agent,
          })
          assert.deepInclude(told[12], { count: 2 })
          assert.deepInclude(told[13], { count: 1, account_id: owner.id })
          for (const event of told) assert.instanceOf(event.at, Date)

          // the audit log holds the same events, in the same order
          const { entries } = yield* read_to_end(start)
          assert.deepStrictEqual(
            entries.map((entry) => entry.event),
            told,
          )
          const text = JSON.stringify({ told, entries }, (_, value) =>
            typeof value === "bigint" ? `${value}` : value,
          )
          for (const secret of [a, b, c, c2, d, e, f, g, h].flatMap((created) => [
            created.session.id,
            String(created.token),
          ]))
            assert.notInclude(text, secret)
          assert.notMatch(text, HASH)
          assert.notMatch(text, TOKEN)
        }),
      ),
    )

    it.effect("a rolled-back transaction or savepoint tells nothing and leaves no audit row", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const database = yield* Database
          const start = yield* end_of_log
          const events = yield* (yield* SessionEvents).subscribe
          const rolled_back = yield* create_account()
          const kept = yield* create_account()
          const doomed = Effect.gen(function* () {
            yield* repo.create_session(rolled_back.id)
            yield* repo.revoke_all_for_account(rolled_back.id)
            return yield* Effect.fail("rolled back" as const)
          })
          assert.isTrue(Exit.isFailure(yield* Effect.exit(database.transaction(doomed))))
          const kept_session = yield* database.transaction(
            Effect.gen(function* () {
              assert.isTrue(Exit.isFailure(yield* Effect.exit(database.transaction(doomed))))
              return yield* repo.create_session(kept.id)
            }),
          )
          const [first] = yield* next_events(events, 1)
          assert.deepInclude(first, { kind: "created", session: session_prefix(kept_session.session.id) })
          const { entries } = yield* read_to_end(start)
          assert.deepStrictEqual(
            entries.map((entry) => entry.event),
            [first],
          )
        }),
      ),
    )

    it.effect("a subscriber that falls behind loses its oldest events, never the newest", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const owner = yield* create_account()
          const created = yield* Effect.gen(function* () {
            const events = yield* (yield* SessionEvents).subscribe
            const repo = yield* SessionRepo
            const sessions = []
            // five events for a buffer of three, none read meanwhile
            for (let i = 0; i < 5; i++) sessions.push(yield* repo.create_session(owner.id))
            const told = yield* next_events(events, 3)
            return { sessions, told }
          }).pipe(Effect.provide(SessionRepo.layer(auth_session, { events_capacity: 3 })))
          assert.deepStrictEqual(
            created.told.map((event) => "session" in event && event.session),
            created.sessions.slice(2).map((session) => session_prefix(session.session.id)),
          )
        }),
      ),
    )
  })
}

// Concurrency needs a real server: PGlite has one connection.
if (postgres_backend !== undefined) {
  layer(with_audit_log(postgres_backend.layer))("session events under concurrency on postgres", (it) => {
    it.effect(
      "25 concurrent logins over a limit of 3: the evictions told are exactly the sessions gone",
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const repo = yield* SessionRepo
            const events = yield* (yield* SessionEvents).subscribe
            const start = yield* end_of_log
            const owner = yield* create_account()
            const created = yield* Effect.all(
              Array.from({ length: 25 }, () => repo.create_session(owner.id, { max_sessions: 3 })),
              { concurrency: "unbounded" },
            )
            const told = yield* next_events(events, 25 + 22)
            const left = new Set((yield* session_rows(owner.id)).map((row) => session_prefix(row.id)))
            assert.strictEqual(left.size, 3)
            const prefixes = (kind: string) =>
              told.flatMap((event) => (event.kind === kind && "session" in event ? [event.session] : []))
            const gone = created
              .map((c) => session_prefix(c.session.id))
              .filter((prefix) => !left.has(prefix))
            assert.sameMembers(prefixes("evicted"), gone)
            assert.sameMembers(
              prefixes("created"),
              created.map((c) => session_prefix(c.session.id)),
            )
            const { entries } = yield* read_to_end(start)
            assert.sameDeepMembers(
              entries.map((entry) => entry.event),
              told,
            )
          }),
        ),
    )

    it.effect("readers following the log by cursor each see every entry once, a late commit included", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const database = yield* Database
          const start = yield* end_of_log
          const owner = yield* create_account()
          // a transaction that writes first and commits last
          const release = yield* Deferred.make<void>()
          const written = yield* Deferred.make<void>()
          const late = yield* Effect.forkChild(
            database.transaction(
              Effect.gen(function* () {
                const session = yield* repo.create_session(owner.id)
                yield* Deferred.succeed(written, undefined)
                yield* Deferred.await(release)
                return session
              }),
            ),
          )
          yield* Deferred.await(written)
          const reader = (seen: Array<AuditEntry>) =>
            Effect.gen(function* () {
              let cursor = start
              while (seen.length < 21) {
                const page = yield* (yield* SessionAuditLog).read(cursor, { limit: 7 })
                seen.push(...page.entries)
                cursor = page.cursor
                yield* Effect.yieldNow
              }
            })
          const first: Array<AuditEntry> = []
          const second: Array<AuditEntry> = []
          const readers = yield* Effect.forkChild(
            Effect.all([reader(first), reader(second)], { concurrency: 2 }),
          )
          // other accounts: the open transaction holds its account's row lock
          yield* Effect.forEach(
            Array.from({ length: 20 }),
            () => Effect.flatMap(create_account(), (other) => repo.create_session(other.id)),
            { concurrency: 4 },
          )
          // nothing after the open transaction's row can be read yet
          assert.deepStrictEqual(first, [])
          yield* Deferred.succeed(release, undefined)
          const late_session = yield* Fiber.join(late)
          yield* Fiber.join(readers)
          const all = (yield* read_to_end(start)).entries
          assert.strictEqual(all.length, 21)
          for (const seen of [first, second]) {
            assert.deepStrictEqual(
              seen.map((entry) => entry.id),
              all.map((entry) => entry.id),
            )
          }
          // first in the log's order (its transaction began first), and not skipped by either reader
          assert.deepInclude(all[0]?.event, {
            kind: "created",
            session: session_prefix(late_session.session.id),
          })
        }),
      ),
    )
  })
} else report_skipped_postgres("session events under concurrency")
