import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Each file opens its own PGlite (~2 s, ~800 MB) and its own PostgreSQL database.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // A touch that fails must be logged, never surface as an unhandled rejection.
    dangerouslyIgnoreUnhandledErrors: false,
  },
})
