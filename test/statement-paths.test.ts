import { assert, layer } from "@effect/vitest"
import type { PGlite } from "@electric-sql/pglite"
import { drizzle as drizzle_pglite } from "drizzle-orm/pglite"
import { Effect } from "effect"
import { Db, query_session_list_for_account } from "../src/index.ts"
import { pglite_backend } from "./support/backends.ts"
import { create_account, insert_session } from "./support/fixtures.ts"

// The package's statements go straight to the driver on the handles its
// layers make (src/db/send.ts); on a Drizzle handle of the application's own
// they run through Drizzle's prepared query. Both paths must give the same rows.

layer(pglite_backend.layer)("a statement on a Drizzle handle the package did not make", (it) => {
  it.effect("runs through Drizzle and returns the same rows, Dates and nulls as the direct path", () =>
    Effect.gen(function* () {
      const owner = yield* create_account()
      yield* insert_session(owner.id)
      yield* insert_session(owner.id)
      const direct = yield* query_session_list_for_account(owner.id)
      const own_handle = yield* Db.use((db) =>
        Effect.succeed(drizzle_pglite({ client: (db as unknown as { $client: PGlite }).$client })),
      )
      const by_drizzle = yield* query_session_list_for_account(owner.id).pipe(
        Effect.provideService(Db, own_handle),
      )
      assert.lengthOf(direct, 2)
      assert.deepStrictEqual(by_drizzle, direct)
      assert.instanceOf(direct[0]?.expires_at, Date)
      assert.isNull(direct[0]?.client_ip)
    }),
  )
})
