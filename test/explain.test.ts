import { assert, describe, layer } from "@effect/vitest"
import { getTableName, sql } from "drizzle-orm"
import { Effect } from "effect"
import { is_write } from "../src/db/standby-confirm.ts"
import { auth_session, Database, Tx } from "../src/index.ts"
import { definition_of } from "../src/session/current-session-table.ts"
import { session_statements } from "../src/session/statements.ts"
import { apply_app_schema, user_session } from "./support/app-schema.ts"
import { postgres_backend, report_skipped_postgres, with_repo } from "./support/backends.ts"

const standalone = definition_of(auth_session)
const SESSIONS = 200_000
const ACCOUNTS = 10_000
const PLAN_MODES = ["force_custom_plan", "force_generic_plan"] as const

interface PlanNode {
  readonly "Node Type": string
  readonly "Relation Name"?: string
  readonly "Index Name"?: string
  readonly Plans?: ReadonlyArray<PlanNode>
}
const nodes_of = (node: PlanNode): Array<PlanNode> => [node, ...(node.Plans ?? []).flatMap(nodes_of)]

/** A placeholder's value for EXPLAIN: real keys from the seeded table, times around now. */
const values = (keys: { id: string; account_id: string }): Record<string, string> => {
  const now = Date.now()
  const at = (offset_ms: number) => new Date(now + offset_ms).toISOString()
  return {
    id: keys.id,
    keep: keys.id,
    account_id: keys.account_id,
    now: at(0),
    seen_hour: at(0),
    expires_at: at(30 * 86_400_000),
    extended_expires_at: at(30 * 86_400_000),
    extend_before: at(15 * 86_400_000),
    stale_before: at(-60_000),
    idle_before: at(-3_600_000),
    idle_hour: new Date(now - 3_600_000 - ((now - 3_600_000) % 3_600_000)).toISOString(),
    authenticated_after: at(-90 * 86_400_000),
    absolute_lifetime_ms: "7776000000 milliseconds",
    absolute_expires_at: at(90 * 86_400_000),
    client_ip: "203.0.113.1",
    user_agent: "explain",
    limit: "50",
    max_sessions: "5",
    batch_size: "1000",
    // a standby read's fence: a WAL position
    fence: "0/0",
  }
}

// The planner only shows its real choices on a table of realistic size.
if (postgres_backend !== undefined) {
  const cases = [
    {
      schema: "standalone",
      layer: postgres_backend.layer,
      definition: standalone,
      accounts: "account",
      label: "username",
    },
    {
      schema: "the app's users table",
      layer: with_repo(postgres_backend.database(), apply_app_schema),
      definition: definition_of(user_session),
      accounts: "users",
      label: "email",
    },
  ]
  for (const { schema, layer: backend_layer, definition, accounts, label } of cases) {
    const sessions = getTableName(definition.sessions)
    layer(backend_layer, { timeout: 60_000 })(`query plans on postgres, ${schema}`, (it) => {
      it.effect(
        `every statement reads ${sessions} through an index at ${SESSIONS} rows, custom and generic plans`,
        () =>
          Effect.gen(function* () {
            const database = yield* Database
            yield* database.transaction(
              Tx.use((tx) =>
                Effect.promise(async () => {
                  await tx.execute(sql`
                INSERT INTO ${sql.identifier(accounts)} (${sql.identifier(label)})
                SELECT 'explain-' || i FROM generate_series(1, ${ACCOUNTS}) i`)
                  await tx.execute(sql`
                WITH numbered AS (SELECT id, row_number() OVER () - 1 AS n FROM ${sql.identifier(accounts)})
                INSERT INTO ${sql.identifier(sessions)} (id, account_id, created_at, expires_at, last_seen_at, last_seen_hour)
                SELECT encode(sha256(convert_to(i::text, 'UTF8')), 'hex'), numbered.id,
                       now() - i * interval '1 second',
                       CASE WHEN i % 10 = 0 THEN now() - interval '1 day' ELSE now() + interval '30 days' END,
                       seen, date_trunc('hour', seen)
                -- last seen over the past 30 days, as a running service's sessions are
                FROM generate_series(1, ${SESSIONS}) i JOIN numbered ON numbered.n = i % ${ACCOUNTS},
                     LATERAL (SELECT now() - ((i * 13) % 2592000) * interval '1 second' AS seen) s`)
                  await tx.execute(sql`ANALYZE ${sql.identifier(sessions)}`)
                  await tx.execute(sql`ANALYZE ${sql.identifier(accounts)}`)
                  const [keys] = (
                    (await tx.execute(
                      sql`SELECT id, account_id::text FROM ${sql.identifier(sessions)} WHERE expires_at > now() LIMIT 1`,
                    )) as { rows: Array<{ id: string; account_id: string }> }
                  ).rows
                  const by_name = values(keys as { id: string; account_id: string })
                  // Statements are prepared once per connection, and after five runs
                  // PostgreSQL may keep a generic plan made without the values:
                  // both plans must use an index.
                  for (const [mode, name, statement] of PLAN_MODES.flatMap((mode) =>
                    Object.entries(session_statements(definition)).map(
                      ([name, entry]) => [mode, name, entry] as const,
                    ),
                  )) {
                    await tx.execute(sql.raw(`SET LOCAL plan_cache_mode = ${mode}`))
                    const args = statement.placeholders.map((placeholder) => `'${by_name[placeholder]}'`)
                    await tx.execute(sql.raw(`PREPARE explained AS ${statement.sql.text}`))
                    const [row] = (
                      (await tx.execute(
                        sql.raw(`EXPLAIN (FORMAT JSON) EXECUTE explained(${args.join(", ")})`),
                      )) as { rows: Array<{ "QUERY PLAN": Array<{ Plan: PlanNode }> }> }
                    ).rows
                    await tx.execute(sql.raw("DEALLOCATE explained"))
                    const plan = nodes_of(
                      (row as { "QUERY PLAN": Array<{ Plan: PlanNode }> })["QUERY PLAN"][0]?.Plan as PlanNode,
                    )
                    // writes_wait_for_standby waits after the statements that write, told by their SQL
                    assert.strictEqual(
                      is_write(statement.sql),
                      plan.some((node) => node["Node Type"] === "ModifyTable"),
                      `is_write is wrong about ${name}`,
                    )
                    const on_sessions = plan.filter((node) => node["Relation Name"] === sessions)
                    console.log(
                      `explain ${mode} ${name}: ${on_sessions.map((node) => `${node["Node Type"]}${node["Index Name"] ? ` using ${node["Index Name"]}` : ""}`).join(", ") || `no scan of ${sessions}`}`,
                    )
                    assert.notInclude(
                      on_sessions.map((node) => node["Node Type"]),
                      "Seq Scan",
                      `${name} scans ${sessions} sequentially (${mode})`,
                    )
                  }
                }),
              ),
            )
          }),
      )
    })
  }
} else {
  describe("query plans", () => {
    report_skipped_postgres("query plans")
  })
}
