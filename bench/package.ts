// What the benchmarks measure: the package as built (`npm run build`, which
// every bench script runs first), as an application runs it. (Run from
// src/ through tsx, every named closure the code creates per call goes
// through esbuild's `__name` helper, a cost the published code does not have.)

export { database_context } from "../dist/db/database.js"
export { pool_transaction } from "../dist/db/pool-transaction.js"
export { type Rows, sending_with } from "../dist/db/send.js"
export type { Statement } from "../dist/db/statement.js"
export { CurrentSession, SECURE_SESSION_COOKIE_NAME, with_session } from "../dist/http.js"
export * from "../dist/index.js"
export { layer_pglite } from "../dist/pglite.js"
export { make_session_cache } from "../dist/session/cache.js"
export { definition_of } from "../dist/session/current-session-table.js"
export { authenticated_times, live_bounds } from "../dist/session/expiry.js"
export { session_statements } from "../dist/session/statements.js"
