import { afterAll } from "vitest"
import { suite_recorder } from "./recorder.ts"

// After every test file: no token (43 base64url chars) and no full token hash
// (64 hex chars) in any log line or span the file's backend suites produced.
const TOKEN = /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/
const HASH = /(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])/

afterAll(() => {
  for (const text of suite_recorder.texts()) {
    const found = TOKEN.exec(text) ?? HASH.exec(text)
    if (found !== null) {
      const around = text.slice(Math.max(0, found.index - 40), found.index + 8)
      throw new Error(`secrecy: a log line or span carries a token or a full hash: …${around}…`)
    }
  }
  console.log(
    `secrecy check: ${suite_recorder.logs.length} log lines and ${suite_recorder.spans.length} spans clean`,
  )
})
