#!/usr/bin/env node
// `npx effect-session-repo <command>` / `npm run cli -- <command>`
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import { Command } from "effect/cli"
import { CliServices, cli } from "./cli.js"

cli.pipe(
  // provided to the command that runs, so `--help` opens no database
  Command.provide(CliServices),
  Command.run({ version: "0.1.0" }),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain,
)
