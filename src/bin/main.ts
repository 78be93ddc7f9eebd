#!/usr/bin/env node
// `npx effect-session-repo <command>` / `npm run cli -- <command>`
import { createRequire } from "node:module"
import { Cause, Effect } from "effect"
import { Command } from "effect/cli"
import { cli_services, commands, failure_line } from "./cli.js"

// an optional peer dependency: library users who never run the CLI need not install it
const platform = await import("@effect/platform-node").catch((error: { code?: string; message?: string }) => {
  const missing = error.code === "ERR_MODULE_NOT_FOUND" && error.message?.includes("'@effect/platform-node'")
  console.error(
    missing
      ? "effect-session-repo: the CLI needs @effect/platform-node, an optional peer dependency: npm install @effect/platform-node"
      : `effect-session-repo: @effect/platform-node did not load (install the version of your effect's minor): ${error.message?.split("\n")[0]}`,
  )
  process.exit(1)
})

// the package's own manifest, two folders up from src/bin and dist/bin alike
const { version } = createRequire(import.meta.url)("../../package.json") as { version: string }
// from argv, not the parsed flag: a command line that fails to parse has no parsed flags
const verbose = process.argv.includes("--verbose")

commands.pipe(
  // provided to the command that runs, so `--help` opens no database
  Command.provide((root) => cli_services(root)),
  Command.run({ version }),
  // one line per failure, and the whole cause with --verbose
  Effect.catchCause((cause) =>
    Effect.sync(() => {
      for (const reason of cause.reasons) {
        if (Cause.isInterruptReason(reason)) continue
        const error = Cause.isFailReason(reason) ? reason.error : reason.defect
        // a usage mistake: the CLI has printed the help and the mistake already
        if ((error as { _tag?: unknown })._tag !== "ShowHelp") console.error(failure_line(error))
      }
      if (verbose) console.error(Cause.pretty(cause))
      process.exitCode = 1
    }),
  ),
  Effect.provide(platform.NodeServices.layer),
  platform.NodeRuntime.runMain,
)
