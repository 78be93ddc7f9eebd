// The consumer test (npm run test:consumer): the package packed as it would be
// published, installed into a fresh application with its own users table and
// drizzle-kit history (test/consumer/app), migrated, type-checked and run in a
// plain Node process. Needs DATABASE_URL and the npm registry. Exits non-zero
// on the first failing step.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { admin_client } from "../support/admin.ts"

const repo = fileURLToPath(new URL("../..", import.meta.url))
const server_url = process.env.DATABASE_URL
if (server_url === undefined) throw new Error("the consumer test needs DATABASE_URL")

const work = mkdtempSync(join(tmpdir(), "esr-consumer-"))
const app = join(work, "app")
const database = `esr_consumer_${process.pid}`
const database_url = (() => {
  const url = new URL(server_url)
  url.pathname = `/${database}`
  return url.toString()
})()

/** Runs a command in the app; returns its output, or throws with it. */
const run = (
  command: string,
  args: Array<string>,
  options: { cwd?: string; expect_failure?: boolean } = {},
) => {
  const began = performance.now()
  const result = spawnSync(command, args, {
    cwd: options.cwd ?? app,
    env: { ...process.env, DATABASE_URL: database_url },
    encoding: "utf8",
    timeout: 300_000,
  })
  const output = `${result.stdout}${result.stderr}`
  const seconds = ((performance.now() - began) / 1000).toFixed(1)
  console.log(`consumer: ${command} ${args.join(" ")} (exit ${result.status}, ${seconds} s)`)
  if (options.expect_failure === true ? result.status === 0 : result.status !== 0) {
    console.log(output)
    throw new Error(`${command} ${args.join(" ")} exited ${result.status}`)
  }
  return output
}

const admin = await admin_client(server_url)
try {
  console.log(`consumer: node ${process.version}`)
  run("npm", ["pack", "--pack-destination", work], { cwd: repo })
  const [tarball] = readdirSync(work).filter((name) => name.endsWith(".tgz"))
  assert.ok(tarball !== undefined, "npm pack made no tarball")

  cpSync(join(repo, "test", "consumer", "app"), app, { recursive: true })
  const manifest = readFileSync(join(app, "package.json"), "utf8").replace("TARBALL", `file:../${tarball}`)
  writeFileSync(join(app, "package.json"), manifest)

  // engine-strict: the package and its dependencies accept this Node
  const install = run("npm", ["install", "--engine-strict", "--no-audit", "--no-fund"])
  assert.doesNotMatch(install, /EBADENGINE/)

  // one copy of effect although the app pins another minor than the package was built with
  const copies = run("npm", ["ls", "effect", "--all", "--parseable"]).trim().split("\n").filter(Boolean)
  assert.equal(new Set(copies).size, 1, `more than one copy of effect:\n${copies.join("\n")}`)
  // a PostgreSQL-only service installs neither PGlite nor the CLI's platform package
  for (const optional of ["@electric-sql/pglite", "@effect/platform-node"])
    assert.equal(run("npm", ["ls", optional, "--parseable"]).trim(), "", `${optional} was installed`)

  await admin.query(`CREATE DATABASE ${database}`)
  run("npx", ["drizzle-kit", "generate", "--name", "init"])
  const [migration] = readdirSync(join(app, "drizzle")).filter((name) => name.endsWith(".sql"))
  const sql = readFileSync(join(app, "drizzle", migration as string), "utf8")
  assert.match(sql, /CREATE TABLE "user_session"/)
  assert.match(sql, /REFERENCES "public"\."users"\("id"\) ON DELETE cascade/)
  assert.match(sql, /"account_id" integer NOT NULL/)
  run("npx", ["drizzle-kit", "migrate"])

  run("npx", ["tsc", "-p", "."])
  const output = run("node", [join("dist", "main.js")])
  assert.match(output, /consumer: ok/)

  // the app's drizzle-kit sees nothing to do after the library's standalone migrate ran
  assert.match(run("npx", ["drizzle-kit", "generate", "--name", "again"]), /No schema changes/)
  run("npx", ["drizzle-kit", "migrate"])

  const cli = run("npx", ["effect-session-repo", "--help"], { expect_failure: true })
  assert.match(cli, /the CLI needs @effect\/platform-node/)

  // a git install (of the committed HEAD) builds dist/ itself (prepare), so the entry points resolve
  const from_git = join(work, "from-git")
  mkdirSync(from_git)
  run("npm", ["init", "-y"], { cwd: from_git })
  run(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      `git+file://${repo}`,
      "effect@4.0.6",
      "drizzle-orm@0.45.0",
      "pg@8.16.0",
    ],
    {
      cwd: from_git,
    },
  )
  const entries = run(
    "node",
    [
      "--input-type=module",
      "-e",
      'await import("effect-session-repo"); await import("effect-session-repo/schema"); console.log("entries: ok")',
    ],
    { cwd: from_git },
  )
  assert.match(entries, /entries: ok/)
  console.log("consumer: all steps passed")
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {})
  await admin.end()
  if (process.env.KEEP_CONSUMER === undefined) rmSync(work, { recursive: true, force: true })
  else console.log(`consumer: kept ${work}`)
}
