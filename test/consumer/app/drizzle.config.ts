import { defineConfig } from "drizzle-kit"

// The app's one migration history: its users table and, from the same schema
// file, the session table effect-session-repo defines against it.
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/schema.ts",
  out: "./drizzle",
  dbCredentials: { url: process.env.DATABASE_URL as string },
})
