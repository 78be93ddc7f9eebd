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

/**
 * The README's TypeScript blocks, each a module of its own: `// src/db/schema.ts`
 * and `// drizzle.config.ts` blocks where they say, with the blocks that import
 * the schema in an own-table program (its table registered), the others in a
 * standalone one. Each program is type-checked by the app's TypeScript.
 */
const compile_readme_snippets = () => {
  const readme = readFileSync(join(repo, "README.md"), "utf8")
  const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] as string)
  assert.ok(blocks.length >= 8, `only ${blocks.length} TypeScript blocks in README.md`)
  const programs = { own_table: join(app, "readme-own-table"), standalone: join(app, "readme-standalone") }
  for (const dir of Object.values(programs)) {
    mkdirSync(join(dir, "src", "db"), { recursive: true })
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          lib: ["ES2022", "DOM"],
          types: ["node"],
          strict: true,
          skipLibCheck: true,
          noEmit: true,
          allowImportingTsExtensions: true,
        },
        include: ["**/*.ts"],
      }),
    )
  }
  blocks.forEach((block, i) => {
    const named = /^\/\/ ((?:src\/db\/schema|drizzle\.config)\.ts)\n/.exec(block)?.[1]
    const own_table = named !== undefined || block.includes('from "./db/schema.ts"')
    const dir = own_table ? programs.own_table : programs.standalone
    writeFileSync(join(dir, named ?? join("src", `readme_${i}.ts`)), block)
  })
  for (const dir of Object.values(programs)) run("npx", ["tsc", "-p", dir])
  console.log(`consumer: ${blocks.length} README blocks compiled`)
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
  // an unchanged schema: push has nothing to do (the defaults are written as PostgreSQL prints them)
  assert.match(run("npx", ["drizzle-kit", "push", "--force", "--verbose"]), /No changes detected/)

  run("npx", ["tsc", "-p", "."])
  const output = run("node", [join("dist", "main.js")])
  assert.match(output, /consumer: ok/)

  // the app's drizzle-kit sees nothing to do after the library's standalone migrate ran
  assert.match(run("npx", ["drizzle-kit", "generate", "--name", "again"]), /No schema changes/)
  run("npx", ["drizzle-kit", "migrate"])

  const cli = run("npx", ["effect-session-repo", "--help"], { expect_failure: true })
  assert.match(cli, /the CLI needs @effect\/platform-node/)

  // with it: the CLI on the app's own table, from the app's compiled schema module (platform-node
  // 4.0.x pulls platform-node-shared 4.1, which needs effect 4.1: an app running the CLI takes both)
  run("npm", ["install", "--no-audit", "--no-fund", "@effect/platform-node@4.1", "effect@4.1"])
  const { version } = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { version: string }
  assert.equal(run("npx", ["effect-session-repo", "--version"]).trim(), `effect-session-repo v${version}`)
  const on_app_table = ["--schema", join("dist", "schema.js")]
  // the session main.js left on the app's pool, listed with its user's email
  assert.match(
    run("npx", ["effect-session-repo", "sessions", "list", ...on_app_table]),
    / {2}pool@example\.com {2}.*\n1 live session\(s\)\n$/,
  )
  const refused = run("npx", ["effect-session-repo", "migrate"], { expect_failure: true })
  assert.match(refused, /^effect-session-repo: this database has your app's session table user_session/m)

  // every TypeScript block of the README compiles against the package as installed
  compile_readme_snippets()

  // a git install (of the committed HEAD) builds dist/ itself; once is enough (CI skips it on its second Node)
  if (process.env.CONSUMER_SKIP_GIT_INSTALL === undefined) {
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
  }
  console.log("consumer: all steps passed")
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {})
  await admin.end()
  if (process.env.KEEP_CONSUMER === undefined) rmSync(work, { recursive: true, force: true })
  else console.log(`consumer: kept ${work}`)
}
