import { defineConfig } from "drizzle-kit"

// `drizzle-kit generate` needs no database; `migrate` uses DATABASE_URL.
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/schema/standalone.ts",
  out: "./drizzle",
  // the standalone schema's own bookkeeping table (src/db/migrations.ts)
  migrations: { schema: "drizzle", table: "__effect_session_repo_migrations" },
  dbCredentials: { url: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
})
