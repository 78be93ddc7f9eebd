import { assert, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Cause, Effect, Exit, Logger, Redacted, Tracer } from "effect"
import { TestClock } from "effect/testing"
import {
  AUTH_SESSION_EXTEND_THRESHOLD_MS,
  AUTH_SESSION_LIFETIME_MS,
  AUTH_SESSION_TOUCH_INTERVAL_MS,
  query_create_session,
  SessionRepo,
  SessionTouches,
} from "../src/index.ts"
import { backends, report_skipped_postgres } from "./support/backends.ts"
import { create_account, on_db, with_refused } from "./support/fixtures.ts"
import { make_recorder, span_text } from "./support/recorder.ts"

const FULL_HASH = /[0-9a-f]{64}/

for (const backend of backends) {
  layer(backend.layer)(`secrecy on ${backend.name}`, (it) => {
    it.effect(
      "no token reaches the database, a log, an error or a span; no full hash reaches a message",
      () =>
        Effect.gen(function* () {
          const recorder = make_recorder()
          const repo = yield* SessionRepo
          const touches = yield* SessionTouches
          const tokens: Array<string> = []
          const errors: Array<string> = []
          const failed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
            Effect.exit(effect).pipe(
              Effect.tap((exit) =>
                Effect.sync(() => {
                  if (Exit.isFailure(exit)) errors.push(Cause.pretty(exit.cause), JSON.stringify(exit.cause))
                }),
              ),
            )

          const scenario = Effect.gen(function* () {
            const owner = yield* create_account()
            for (let i = 0; i < 3; i++) {
              const { token, session } = yield* repo.create_session(owner.id)
              tokens.push(Redacted.value(token))
              yield* repo.validate(token)
              // a duplicate insert: the server's detail line names the hash
              yield* failed(query_create_session(session.id, owner.id, session.expires_at))
              // a token where an id belongs
              yield* failed(repo.revoke_for_account(Redacted.value(token), owner.id))
              yield* failed(repo.list_for_account(Redacted.value(token)))
              yield* failed(repo.create_session(Redacted.value(token)))
            }
            const [first, second] = tokens
            // a touch that fails, and one that extends
            yield* TestClock.adjust(AUTH_SESSION_TOUCH_INTERVAL_MS)
            yield* with_refused("UPDATE", Effect.andThen(repo.validate(first as string), touches.await_idle))
            yield* TestClock.adjust(AUTH_SESSION_LIFETIME_MS - AUTH_SESSION_EXTEND_THRESHOLD_MS)
            yield* repo.authenticate(second as string)
            yield* repo.list_all_active()
            yield* repo.revoke(first as string)
            yield* repo.cleanup_expired()
          })
          yield* scenario.pipe(
            Effect.provideService(Tracer.Tracer, recorder.tracer),
            Effect.provideService(Logger.CurrentLoggers, new Set([recorder.logger])),
          )

          const stored = yield* on_db((db) =>
            db.execute(sql`SELECT row_to_json(s)::text AS row FROM auth_session s`),
          )
          const texts = {
            database: JSON.stringify(stored),
            logs: recorder.logs.join("\n"),
            errors: errors.join("\n"),
            spans: recorder.spans.map(span_text).join("\n"),
          }
          console.log(
            `secrecy: ${recorder.logs.length} log lines, ${recorder.spans.length} spans, ${errors.length / 2} errors, ${tokens.length} tokens checked`,
          )
          assert.isAbove(recorder.logs.length, 0)
          assert.isAbove(recorder.spans.length, 10)
          assert.isAbove(errors.length, 0)
          for (const token of tokens) {
            for (const [where, text] of Object.entries(texts))
              assert.notInclude(text, token, `a token in the ${where}`)
          }
          for (const where of ["logs", "errors", "spans"] as const) {
            assert.notMatch(texts[where], FULL_HASH, `a full hash in the ${where}`)
          }
        }),
    )
  })
}

report_skipped_postgres("secrecy")
