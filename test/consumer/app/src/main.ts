// An application using effect-session-repo as installed from its tarball, in a
// plain Node process. Exits non-zero (an assertion or an unhandled rejection)
// when anything is off; prints "consumer: ok" at the end.
import assert from "node:assert/strict"
import { registerHooks } from "node:module"

// every module the library's main entry loads, to check what it pulls in
const resolved: Array<string> = []
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context)
    resolved.push(result.url)
    return result
  },
})

const { Effect, Layer, Option, Redacted } = await import("effect")
const { eq, sql } = await import("drizzle-orm")
const { drizzle } = await import("drizzle-orm/node-postgres")
const { Db, layer_postgres_from_config, layer_postgres_pool, layer_session_policy, migrate, SessionRepo } =
  await import("effect-session-repo")
const { user_session, users } = await import("./schema.js")

const loaded_by_main = [...resolved]
// (effect's Schema loads its cookie and header modules itself; the server stack is HttpRouter/HttpServer*)
for (const unwanted of [
  "/@electric-sql/pglite/",
  "/@effect/platform-node",
  "/effect/dist/http/HttpRouter",
  "/effect/dist/http/HttpServer",
])
  assert.ok(!loaded_by_main.some((url) => url.includes(unwanted)), `the main entry loaded ${unwanted}`)

const database_url = process.env.DATABASE_URL as string
const app_db = drizzle(database_url)

const policy = layer_session_policy({ max_sessions: 2 })
const Sessions = SessionRepo.layer(user_session).pipe(
  Layer.provide(policy),
  Layer.provideMerge(layer_postgres_from_config),
)

const own_table = Effect.gen(function* () {
  const repo = yield* SessionRepo
  const [user] = yield* Effect.promise(() =>
    app_db.insert(users).values({ email: "ada@example.com" }).returning(),
  )
  assert.ok(user !== undefined)
  const { token, session } = yield* repo.create_session(user.id)
  // typed by the registered table: a number, with no cast
  const account_id: number = session.account_id
  assert.equal(account_id, user.id, "the session's account id is the user's number")
  assert.equal(typeof session.account_id, "number")
  const validated = yield* repo.validate(token)
  assert.ok(Option.isSome(validated))
  const listed = yield* repo.list_for_account(user.id)
  assert.deepEqual(
    listed.map((s) => s.id),
    [session.id],
  )
  const admin = yield* repo.list_all_active()
  assert.equal(admin.find((s) => s.id === session.id)?.username, "ada@example.com")
  assert.equal(yield* repo.revoke_for_account(session.id, user.id), true)
  assert.ok(Option.isNone(yield* repo.validate(token)))
  // a JavaScript caller's string is InvalidInput at run time; in TypeScript it does not compile
  // @ts-expect-error the registered key is a serial: its ids are numbers
  const wrong = yield* Effect.flip(repo.create_session(String(user.id)))
  assert.equal(wrong._tag, "InvalidInput")
  // the policy given with Layer.provide: 2 sessions kept of 3
  for (const _ of [1, 2]) yield* repo.create_session(user.id)
  assert.equal((yield* repo.list_for_account(user.id)).length, 2)

  // with_session serves a request with the session's cookie
  const { token: cookie } = yield* repo.create_session(user.id)
  const { HttpRouter, HttpServerResponse } = yield* Effect.promise(() => import("effect/http"))
  const { CurrentSession, SessionCookie, with_session } = yield* Effect.promise(
    () => import("effect-session-repo/http"),
  )
  const me = HttpRouter.add(
    "GET",
    "/me",
    with_session(
      Effect.gen(function* () {
        const { session: current } = yield* CurrentSession
        return HttpServerResponse.jsonUnsafe({ account_id: current.account_id })
      }),
    ),
  )
  const name = SessionCookie.defaultValue().name
  const web = HttpRouter.toWebHandler(me.pipe(Layer.provideMerge(Sessions)), { disableLogger: true })
  const response = yield* Effect.promise(() =>
    web.handler(
      new Request("http://localhost/me", { headers: { cookie: `${name}=${Redacted.value(cookie)}` } }),
    ),
  )
  assert.equal(response.status, 200)
  assert.deepEqual(JSON.parse(yield* Effect.promise(() => response.text())), { account_id: user.id })
  const anonymous = yield* Effect.promise(() => web.handler(new Request("http://localhost/me")))
  assert.equal(anonymous.status, 401)
  yield* Effect.promise(() => web.dispose())

  // deleting the user deletes its sessions
  yield* Effect.promise(() => app_db.delete(users).where(eq(users.id, user.id)))
  assert.ok(Option.isNone(yield* repo.validate(cookie)))
  const left = yield* Effect.promise(() => app_db.execute(sql`SELECT count(*)::int AS n FROM user_session`))
  assert.equal((left.rows[0] as { n: number }).n, 0)

  // @ts-expect-error an account id of this app is a number: the types came through
  yield* Effect.flip(repo.create_session({ id: 1 }))
})

// The app's own pool, through its Drizzle database: the repo runs on it, and
// it is still the app's (open) after the layer closes.
const on_app_pool = Effect.gen(function* () {
  const repo = yield* SessionRepo
  const [user] = yield* Effect.promise(() =>
    app_db.insert(users).values({ email: "pool@example.com" }).returning(),
  )
  assert.ok(user !== undefined)
  const { token } = yield* repo.create_session(user.id)
  assert.ok(Option.isSome(yield* repo.validate(token)))
}).pipe(
  Effect.provide(
    SessionRepo.layer(user_session).pipe(
      Layer.provide(policy),
      Layer.provideMerge(layer_postgres_pool(app_db)),
    ),
  ),
)

// The app's own migrations ran first (drizzle-kit migrate); the standalone
// schema's migrate must still create its tables beside them.
const standalone = Effect.gen(function* () {
  yield* migrate
  const db = yield* Db
  const tables = yield* Effect.promise(() =>
    db.execute(
      sql`SELECT to_regclass('account') IS NOT NULL AND to_regclass('auth_session') IS NOT NULL AS ok`,
    ),
  )
  assert.equal((tables as unknown as { rows: Array<{ ok: boolean }> }).rows[0]?.ok, true)
}).pipe(Effect.provide(layer_postgres_from_config))

await Effect.runPromise(own_table.pipe(Effect.provide(Sessions)))
await Effect.runPromise(on_app_pool)
assert.equal((await app_db.execute(sql`SELECT 1 AS one`)).rows.length, 1, "the app's pool was closed")
await Effect.runPromise(standalone)
await app_db.$client.end()
console.log("consumer: ok")
