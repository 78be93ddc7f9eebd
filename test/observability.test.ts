import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Metric } from "effect"
import { FetchHttpClient } from "effect/http"
import { Otlp, OtlpExporter, PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"
import { getMetricsFromIterator, type PromMetrics } from "prom2javascript"
import { Database, SessionRepo } from "../src/index.ts"
import { POOL_SAMPLE_DELAY_MS } from "../src/observability/pool-gauges.ts"
import { backends } from "./support/backends.ts"
import { create_account } from "./support/fixtures.ts"

const TOKEN = /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/
const HASH = /[0-9a-f]{64}/

/**
 * A scripted scenario with known counts: 3 logins over a limit of 2 (one
 * eviction), 4 valid validations, 2 malformed tokens, a logout, a validation
 * of the logged-out token, a revoke of all by an admin, a rolled-back
 * transaction. Returns every token and hash it saw, for the secrecy checks.
 */
const scenario = Effect.gen(function* () {
  const repo = yield* SessionRepo
  const database = yield* Database
  const owner = yield* create_account()
  const created = []
  // a second apart: the limit keeps the newest
  for (let i = 0; i < 3; i++) {
    yield* TestClock.adjust(1000)
    created.push(yield* repo.create_session(owner.id, { max_sessions: 2 }))
  }
  const [, kept, logged_out] = created as [(typeof created)[0], (typeof created)[0], (typeof created)[0]]
  for (let i = 0; i < 4; i++) assert.isTrue((yield* repo.validate(kept.token))._tag === "Some")
  for (const garbage of ["not a token", ""]) assert.isTrue((yield* repo.validate(garbage))._tag === "None")
  yield* repo.revoke(logged_out.token)
  assert.isTrue((yield* repo.validate(logged_out.token))._tag === "None")
  assert.strictEqual(yield* repo.revoke_all_for_account(owner.id, { reason: "admin" }), 1)
  const rolled_back = database.transaction(Effect.andThen(repo.create_session(owner.id), Effect.fail("no")))
  assert.isTrue(Exit.isFailure(yield* Effect.exit(rolled_back)))
  return created.flatMap((session) => [session.session.id, String(session.token)])
})

/** Prometheus text, parsed by a maintained parser. */
const parse_prometheus = (text: string) =>
  Effect.promise(() => getMetricsFromIterator(text.split("\n").values()))

/** The value (a histogram's count) of `name`'s sample with these labels (0 when absent). */
const sample = (metrics: PromMetrics, name: string, labels: Record<string, string>): number => {
  const samples: ReadonlyArray<{ labels: Record<string, string>; value?: number; count?: number }> =
    metrics[name]?.data ?? []
  const found = samples.find((candidate) =>
    Object.entries(labels).every(([key, value]) => candidate.labels[key] === value),
  )
  return found?.value ?? found?.count ?? 0
}

/** An OTLP/HTTP receiver on a free port: every JSON body it is sent, by path. */
const otlp_receiver = Effect.acquireRelease(
  Effect.promise(async () => {
    const received: Array<{ path: string; body: string }> = []
    const server = http.createServer((request, response) => {
      let body = ""
      request.on("data", (chunk) => {
        body += chunk
      })
      request.on("end", () => {
        received.push({ path: request.url ?? "", body })
        response.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening))
    return { server, received, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
  }),
  ({ server }) => Effect.promise(() => new Promise<void>((closed) => server.close(() => closed()))),
)

interface OtlpAttribute {
  readonly key: string
  readonly value: { readonly stringValue?: string }
}
interface OtlpSpan {
  readonly name: string
  readonly attributes: ReadonlyArray<OtlpAttribute>
}

for (const backend of backends) {
  layer(backend.layer)(`metrics and traces on ${backend.name}`, (it) => {
    it.effect("after a scripted scenario the Prometheus text holds the scenario's counts", () =>
      Effect.gen(function* () {
        const secrets = yield* scenario
        const text = yield* PrometheusMetrics.format()
        const metrics = yield* parse_prometheus(text)
        const count = (name: string, labels: Record<string, string>) => sample(metrics, name, labels)
        assert.deepStrictEqual(
          {
            valid: count("session_validations_total", { outcome: "valid" }),
            malformed: count("session_validations_total", { outcome: "malformed" }),
            unknown: count("session_validations_total", { outcome: "unknown" }),
            created: count("session_events_total", { kind: "created" }),
            evicted: count("session_events_total", { kind: "evicted" }),
            revoked: count("session_events_total", { kind: "revoked" }),
            revoked_all: count("session_events_total", { kind: "revoked_all" }),
            logout: count("session_revocations_total", { reason: "logout" }),
            admin: count("session_revocations_total", { reason: "admin" }),
            commits: count("session_transaction_duration_seconds", { outcome: "commit" }),
            rollbacks: count("session_transaction_duration_seconds", { outcome: "rollback" }),
            inserts: count("session_statement_duration_seconds", { statement: "create_session" }),
          },
          {
            valid: 4,
            malformed: 2,
            unknown: 1,
            created: 3,
            evicted: 1,
            revoked: 1,
            revoked_all: 1,
            logout: 1,
            admin: 1,
            commits: 3,
            rollbacks: 1,
            // the rolled-back transaction's insert was sent too
            inserts: 4,
          },
        )
        for (const secret of secrets) assert.notInclude(text, secret)
        assert.notMatch(text, HASH)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
    )

    if (backend.name === "postgres")
      it.effect("the pool gauges follow the pool: its open, idle and waiting connections", () =>
        Effect.gen(function* () {
          const repo = yield* SessionRepo
          const { token } = yield* repo.create_session((yield* create_account()).id)
          // 12 validations at once on a pool of 10: some wait, then all are idle again
          yield* Effect.all(
            Array.from({ length: 12 }, () => repo.validate(token)),
            { concurrency: "unbounded" },
          )
          // the gauges are sampled a moment after the pool's last event (real time)
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 4 * POOL_SAMPLE_DELAY_MS)))
          // the layer's pool writes to the default registry
          const metrics = yield* parse_prometheus(yield* PrometheusMetrics.format())
          const gauge = (state: string) => sample(metrics, "session_pool_connections", { state })
          assert.isAtLeast(gauge("open"), 1)
          assert.strictEqual(gauge("idle"), gauge("open"))
          assert.strictEqual(gauge("waiting"), 0)
        }),
      )

    it.effect(
      "spans and metrics exported through OTLP carry each repo call and transaction, and no secret",
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const receiver = yield* otlp_receiver
            const exporting = Otlp.layerJson({
              baseUrl: receiver.url,
              resource: { serviceName: "effect-session-repo-test" },
            }).pipe(Layer.provide(FetchHttpClient.layer))
            const secrets = yield* Effect.gen(function* () {
              const secrets = yield* scenario
              yield* OtlpExporter.Flusher.use((flusher) => flusher.flush)
              return secrets
            }).pipe(Effect.provide(exporting), Effect.provideService(Metric.MetricRegistry, new Map()))

            const bodies = (path: string) =>
              receiver.received.filter((r) => r.path === path).map((r) => r.body)
            const spans: Array<OtlpSpan> = bodies("/v1/traces").flatMap((body) =>
              JSON.parse(body).resourceSpans.flatMap(
                (resource: { scopeSpans: Array<{ spans: Array<OtlpSpan> }> }) =>
                  resource.scopeSpans.flatMap((scope) => scope.spans),
              ),
            )
            const names = spans.map((span) => span.name)
            for (const name of [
              "SessionRepo.create_session",
              "SessionRepo.validate",
              "SessionRepo.revoke",
              "SessionRepo.revoke_all_for_account",
            ])
              assert.include(names, name)
            const outcomes = spans
              .filter((span) => span.name === "Database.transaction")
              .map(
                (span) => span.attributes.find((a) => a.key === "db.transaction.outcome")?.value.stringValue,
              )
            assert.sameMembers(outcomes, ["commit", "commit", "commit", "rollback"])
            const metrics = bodies("/v1/metrics").join("\n")
            assert.include(metrics, "session_validations_total")
            assert.include(metrics, "session_transaction_duration_seconds")
            const everything = receiver.received.map((r) => r.body).join("\n")
            for (const secret of secrets) assert.notInclude(everything, secret)
            assert.notMatch(everything, HASH)
            assert.notMatch(everything, TOKEN)
          }),
        ),
    )
  })
}
