import pg from "pg"

/** A client on the server for a test's own statements (never through the layers under test). */
export const admin_client = async (url: string): Promise<pg.Client> => {
  const client = new pg.Client({ connectionString: url, application_name: "effect-session-repo-test" })
  client.on("error", () => {})
  await client.connect()
  return client
}
