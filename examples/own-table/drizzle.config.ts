// The README's drizzle.config.ts for an app with its own tables; compiled by `npm run typecheck`.
import { defineConfig } from "drizzle-kit"

export default defineConfig({
  dialect: "postgresql",
  // your schema file, which exports users and user_session
  schema: "./src/db/schema.ts",
  out: "./drizzle",
  dbCredentials: { url: process.env.DATABASE_URL as string },
})
