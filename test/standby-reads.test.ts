import { Effect, Layer, ManagedRuntime, Option, Redacted } from "effect"
import pg from "pg"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { is_applied_everywhere, synchronous_standby_names } from "../src/db/postgres-standby.ts"
import { FENCE_MAX_AGE_MS } from "../src/db/standby-reads.ts"
import { auth_session, Database, layer_postgres, layer_session_policy, SessionRepo } from "../src/index.ts"
import { type HaFormation, type HaNode, ha_available, ha_formation } from "./support/ha-formation.ts"

// Standby reads: the rules on their own, then on a real pg_auto_failover
// formation (.ci/ha-formation.sh): validations answered by the standby, a
// standby behind the primary never believed, and a revoke that waits for the
// standby, or for the fence's age while the primary runs without one.

describe("which standbys a write must have reached", () => {
  it("reads synchronous_standby_names as PostgreSQL does", () => {
    assert.deepStrictEqual(synchronous_standby_names("ANY 1 (pgautofailover_standby_2)"), [
      "pgautofailover_standby_2",
    ])
    assert.deepStrictEqual(synchronous_standby_names('FIRST 2 (a, "B")'), ["a", "b"])
    assert.deepStrictEqual(synchronous_standby_names("2 (a,b)"), ["a", "b"])
    assert.deepStrictEqual(synchronous_standby_names("a, b"), ["a", "b"])
    assert.deepStrictEqual(synchronous_standby_names("*"), ["*"])
    assert.deepStrictEqual(synchronous_standby_names(""), [])
  })
  it("confirms only when every connected standby applied it and the synchronous ones are all among them", () => {
    const row = (sync_names: string, applied: Array<string>, behind: number) => ({
      target: "0/1",
      sync_names,
      applied,
      behind,
    })
    assert.isTrue(is_applied_everywhere(row("ANY 1 (s2)", ["s2"], 0)))
    assert.isFalse(is_applied_everywhere(row("ANY 1 (s2)", ["s2"], 1)), "a connected standby is behind")
    assert.isFalse(is_applied_everywhere(row("ANY 1 (s2, s3)", ["s2"], 0)), "s3 is not connected")
    // no synchronous standby: one that is not connected now may come back behind
    assert.isFalse(is_applied_everywhere(row("", ["s2"], 0)))
    assert.isTrue(is_applied_everywhere(row("*", ["s2"], 0)))
    assert.isFalse(is_applied_everywhere(row("*", [], 0)))
  })
})

if (!ha_available()) {
  console.warn("[standby reads] HA formation SKIPPED: HA_URL is not set and REQUIRE_HA is not 1")
  describe.skip("standby reads on a pg_auto_failover formation", () => {
    it("needs HA_URL or REQUIRE_HA=1", () => {})
  })
} else {
  describe("standby reads on a pg_auto_failover formation", () => {
    let formation: HaFormation
    let runtime: ManagedRuntime.ManagedRuntime<SessionRepo | Database, unknown>
    let repo: SessionRepo["Service"]
    let admin: pg.Client
    let account_id: string
    // the nodes' own URLs, in the formation URI's order
    let node_urls: Array<string>

    const standby_node = (): HaNode => (formation.primary_node() === 1 ? 2 : 1)
    /** Node n's own URL: its port is the script's base port + n, as in the URI (whose order may differ). */
    const node_url = (n: HaNode) => {
      const ports = node_urls.map((url) => Number(new URL(url).port))
      return node_urls[ports.indexOf(Math.min(...ports) + n - 1)] as string
    }
    const on_node = async <A>(n: HaNode, run: (client: pg.Client) => Promise<A>) => {
      const client = new pg.Client({ connectionString: node_url(n) })
      await client.connect()
      try {
        return await run(client)
      } finally {
        await client.end()
      }
    }
    const timed = async <A>(run: () => Promise<A>) => {
      const started = performance.now()
      const value = await run()
      return { value, ms: performance.now() - started }
    }

    beforeAll(async () => {
      formation = ha_formation()
      const url = new URL(formation.uri.replace(/@[^/]+\//, "@placeholder/"))
      const hosts = /@([^/]+)\//.exec(formation.uri)?.[1]?.split(",") ?? []
      node_urls = hosts.map((host) => `postgres://postgres@${host}${url.pathname}`)
      const read_uri = formation.uri.replace(
        "target_session_attrs=read-write",
        "target_session_attrs=standby",
      )
      runtime = ManagedRuntime.make(
        SessionRepo.layer(auth_session).pipe(
          Layer.provide(layer_session_policy()),
          Layer.provideMerge(
            layer_postgres({
              url: Redacted.make(formation.uri),
              read_url: Redacted.make(read_uri),
              pool_size: 4,
            }),
          ),
        ),
      )
      await runtime.runPromise(Database.use((database) => database.migrate))
      repo = await runtime.runPromise(SessionRepo.use(Effect.succeed))
      admin = new pg.Client({ connectionString: node_url(formation.primary_node()) })
      await admin.connect()
      const { rows } = await admin.query<{ id: string }>(
        "INSERT INTO account (username) VALUES ('standby-' || gen_random_uuid()) RETURNING id",
      )
      account_id = String(rows[0]?.id)
    }, 180_000)
    afterAll(async () => {
      await admin?.end()
      await runtime?.dispose()
    })

    it("validations are answered by the standby", async () => {
      const { token } = await runtime.runPromise(repo.create_session(account_id as never))
      for (let i = 0; i < 20; i++)
        assert.isTrue(Option.isSome(await runtime.runPromise(repo.validate(token))))
      // the read pool's connections on the standby last ran the fenced read
      const fenced = await on_node(standby_node(), (client) =>
        client.query<{ count: string }>(
          "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'effect-session-repo' AND query LIKE '%pg_last_wal_replay_lsn%'",
        ),
      )
      assert.isAbove(Number(fenced.rows[0]?.count), 0)
    })

    it("a standby behind the primary is not believed: a session deleted on the primary does not validate", async () => {
      const { token, session } = await runtime.runPromise(repo.create_session(account_id as never))
      const standby = standby_node()
      await on_node(standby, (client) => client.query("SELECT pg_wal_replay_pause()"))
      try {
        // deleted by hand, committed without waiting for any standby: the paused one still has the row
        await admin.query("BEGIN")
        await admin.query("SET LOCAL synchronous_commit = local")
        await admin.query("DELETE FROM auth_session WHERE id = $1", [session.id])
        await admin.query("COMMIT")
        const on_standby = await on_node(standby, (client) =>
          client.query("SELECT 1 FROM auth_session WHERE id = $1", [session.id]),
        )
        assert.strictEqual(on_standby.rowCount, 1, "the paused standby should still have the row")
        // once the fence has moved past the delete (it is fetched every 100 ms)
        await new Promise((resolve) => setTimeout(resolve, 300))
        assert.isTrue(Option.isNone(await runtime.runPromise(repo.validate(token))))
      } finally {
        await on_node(standby, (client) => client.query("SELECT pg_wal_replay_resume()"))
      }
    })

    it("a revoke returns once the standby applied it, and waits out the fence's age while the standby is down", async () => {
      const healthy = await runtime.runPromise(repo.create_session(account_id as never))
      const fast = await timed(() => runtime.runPromise(repo.revoke(healthy.token)))
      assert.isBelow(fast.ms, FENCE_MAX_AGE_MS / 2, "a revoke with the standby healthy")
      const standby = standby_node()
      const created = await runtime.runPromise(repo.create_session(account_id as never))
      formation.stop_node(standby)
      try {
        // the primary waits for its synchronous standby until the monitor drops it (a few seconds)
        const slow = await timed(() => runtime.runPromise(repo.revoke(created.token)))
        console.log(
          `standby reads: revoke with the standby healthy ${Math.round(fast.ms)} ms, with it stopped ${Math.round(slow.ms)} ms`,
        )
        assert.isAtLeast(slow.ms, FENCE_MAX_AGE_MS)
        assert.isTrue(Option.isNone(await runtime.runPromise(repo.validate(created.token))))
      } finally {
        formation.start_node(standby)
        formation.wait_healthy()
      }
      // back in synchronous replication: fast again, and reads on the standby
      const again = await runtime.runPromise(repo.create_session(account_id as never))
      await new Promise((resolve) => setTimeout(resolve, 300))
      const after = await timed(() => runtime.runPromise(repo.revoke(again.token)))
      assert.isBelow(after.ms, FENCE_MAX_AGE_MS / 2)
      assert.isTrue(Option.isNone(await runtime.runPromise(repo.validate(again.token))))
    }, 120_000)
  })
}
