import { afterAll } from "vitest"
import { recorded_logs, recorded_spans, span_text } from "./recorder.ts"

// After every test file: no token (43 base64url chars) and no full token hash
// (64 hex chars) in any log line or span the file's suites produced.
const TOKEN = /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/
const HASH = /(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])/

afterAll(() => {
  const texts = [
    ...recorded_logs.map((line) => ["log", line]),
    ...recorded_spans.map((s) => ["span", span_text(s)]),
  ]
  for (const [kind, text] of texts) {
    const found = TOKEN.exec(text ?? "") ?? HASH.exec(text ?? "")
    if (found !== null) {
      throw new Error(
        `secrecy: a ${kind} carries a token or a full hash: …${text?.slice(Math.max(0, found.index - 40), found.index + 8)}…`,
      )
    }
  }
  console.log(`secrecy check: ${recorded_logs.length} log lines and ${recorded_spans.length} spans clean`)
})
