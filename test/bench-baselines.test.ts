import { assert, describe, it } from "@effect/vitest"
import pg from "pg"
import { vi } from "vitest"
import { create_database, seed_sessions } from "../bench/harness.ts"
import { bench_operations, OPERATIONS } from "../bench/variants.ts"
import { report_skipped_postgres, server_url } from "./support/backends.ts"

// npm run bench compares SessionRepo with raw pg sending "the same SQL": that
// is only true while each raw variant sends exactly the statements the repo
// sends. This watches both on the wire (node-postgres's Client.query) and
// compares them, statement by statement.

interface Sent {
  readonly text: string
  readonly values: ReadonlyArray<unknown>
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const HASH = /^[0-9a-f]{64}$/

/** Equal values, or two times of the same moment give or take 5 s, or two new session ids. */
const same_value = (repo: unknown, raw: unknown): boolean =>
  repo === raw ||
  (typeof repo === "string" &&
    typeof raw === "string" &&
    ((ISO_TIME.test(repo) && ISO_TIME.test(raw) && Math.abs(Date.parse(repo) - Date.parse(raw)) < 5000) ||
      (HASH.test(repo) && HASH.test(raw))))

/** What `op` sends through every node-postgres client, in order (statements with values only). */
const sent_by = async (op: () => Promise<unknown>): Promise<Array<Sent>> => {
  const sent: Array<Sent> = []
  const query = pg.Client.prototype.query
  const spy = vi.spyOn(pg.Client.prototype, "query").mockImplementation(function (
    this: pg.Client,
    ...args: Parameters<typeof query>
  ) {
    const [config] = args as unknown as [unknown]
    if (typeof config === "object" && config !== null && "text" in config)
      sent.push({ text: String(config.text), values: (config as { values?: Array<unknown> }).values ?? [] })
    else if (typeof config === "string") sent.push({ text: config, values: [] })
    return query.apply(this, args) as never
  })
  try {
    await op()
  } finally {
    spy.mockRestore()
  }
  return sent
}

if (server_url !== undefined) {
  const url = server_url
  describe("npm run bench's raw baselines", () => {
    it("send exactly the repo's statements (SQL text and values) for every operation", {
      timeout: 60_000,
    }, async () => {
      const database = await create_database(url, "baselines")
      try {
        // one account and one token: both variants get the same input
        const seeded = await seed_sessions(database.url, { accounts: 1, sessions: 1 })
        const operations = bench_operations(database.url, {
          accounts: seeded.accounts.slice(0, 1),
          tokens: seeded.tokens.slice(0, 1),
        })
        for (const operation of OPERATIONS) {
          const [repo, raw] = await Promise.all(
            (operations[operation] ?? []).slice(0, 2).map(([, open]) => open()),
          )
          assert.isDefined(repo)
          assert.isDefined(raw)
          if (repo === undefined || raw === undefined) return
          // The cached repo reads a session once, then serves it from memory:
          // its first call is the one the raw variant repeats on every call.
          // (So does the cache of one entry here, with one token: in the
          // benchmark each call draws another of 100,000 and misses.)
          const cached = operation === "validate, cached" || operation === "validate, cache misses"
          // else a first call each, so pools and prepared statements are in place
          if (!cached) await repo.op()
          await raw.op()
          const [by_repo_all, by_raw] = [await sent_by(repo.op), await sent_by(raw.op)]
          // (its layer starts on that first call: the trigger check, LISTEN and its probe come first)
          const by_repo = cached ? by_repo_all.slice(-1) : by_repo_all
          if (cached) assert.deepStrictEqual(await sent_by(repo.op), [], "a cache hit sends nothing")
          await Promise.all([repo.close(), raw.close()])
          assert.isAbove(by_repo.length, 0, operation)
          assert.deepStrictEqual(
            by_raw.map((sent) => sent.text),
            by_repo.map((sent) => sent.text),
            `${operation}: the raw variant's SQL differs from the repo's`,
          )
          for (const [i, sent] of by_repo.entries()) {
            const raw_values = by_raw[i]?.values ?? []
            assert.strictEqual(raw_values.length, sent.values.length, `${operation}: statement ${i}'s values`)
            for (const [j, value] of sent.values.entries())
              assert.isTrue(
                same_value(value, raw_values[j]),
                `${operation}: statement ${i}, value ${j}: the repo sent ${String(value)}, the raw variant ${String(raw_values[j])}`,
              )
          }
        }
      } finally {
        await database.drop()
      }
    })
  })
}

report_skipped_postgres("npm run bench's raw baselines")
