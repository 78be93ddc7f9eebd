#!/usr/bin/env node
// `npx effect-session-repo <command>` / `npm run cli -- <command>`
import { Effect } from "effect"
import { Command } from "effect/cli"
import { CliServices, cli } from "./cli.js"

// an optional peer dependency: library users who never run the CLI need not install it
const platform = await import("@effect/platform-node").catch(() => undefined)
if (platform === undefined) {
  console.error(
    "effect-session-repo: the CLI needs @effect/platform-node, an optional peer dependency: npm install @effect/platform-node",
  )
  process.exit(1)
}

cli.pipe(
  // provided to the command that runs, so `--help` opens no database
  Command.provide(CliServices),
  Command.run({ version: "0.2.0" }),
  Effect.provide(platform.NodeServices.layer),
  platform.NodeRuntime.runMain,
)
