// effect-session-repo/pglite: embedded PGlite (an optional peer dependency).
export { layer_database_from_config } from "./db/from-config.js"
export { layer_pglite, type PgliteOptions } from "./db/pglite.js"
