import { fileURLToPath } from "node:url"

/** The folder drizzle-kit generates into; shipped with the package. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url))
