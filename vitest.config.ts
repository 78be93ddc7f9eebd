import { defineConfig } from "vitest/config"

// Vitest 5 targets Node 22; its failure report calls Map.groupBy, which Node 20
// lacks. Without this, a failing test on Node 20 prints a reporter crash
// instead of the failure.
if (typeof (Map as { groupBy?: unknown }).groupBy !== "function") {
  Object.defineProperty(Map, "groupBy", {
    value: <K, V>(items: Iterable<V>, key: (item: V, index: number) => K): Map<K, Array<V>> => {
      const groups = new Map<K, Array<V>>()
      let index = 0
      for (const item of items) {
        const k = key(item, index++)
        const group = groups.get(k)
        if (group === undefined) groups.set(k, [item])
        else group.push(item)
      }
      return groups
    },
  })
}

export default defineConfig({
  // the examples import the package by name: test the source, not a stale build
  resolve: {
    alias: [
      { find: /^effect-session-repo$/, replacement: new URL("./src/index.ts", import.meta.url).pathname },
      {
        find: /^effect-session-repo\/(http|pglite)$/,
        replacement: new URL("./src/$1.ts", import.meta.url).pathname,
      },
      {
        find: /^effect-session-repo\/schema$/,
        replacement: new URL("./src/schema/index.ts", import.meta.url).pathname,
      },
    ],
  },
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/support/secrecy-check.ts"],
    // Each file opens its own PGlite (~2 s, ~800 MB) and its own PostgreSQL database.
    // Two files at a time (vitest's default here is one per spare core: one):
    // most of a file's time is spent waiting on a database, and the suite
    // takes about 190 s instead of 240 on the 2-core CI machine.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
