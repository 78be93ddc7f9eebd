#!/usr/bin/env node
// `npx effect-session-repo <command>` / `npm run cli -- <command>`
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Command } from "effect/cli"
import { CliServices, cli } from "./cli.ts"

cli.pipe(
  Command.run({ version: "0.1.0" }),
  Effect.provide(Layer.mergeAll(CliServices, NodeServices.layer)),
  NodeRuntime.runMain,
)
