// npm run bench:profile [-- operation ...]: where the time of one operation
// goes, for (a) SessionRepo and (b) raw pg, each run alone with one caller
// (BENCH_PROFILE_CALLERS: more) on the real PostgreSQL server
// (DATABASE_URL), on npm run bench's data:
// 1. a CPU profile, its samples grouped (waiting for the server, socket
//    writes, pg, Drizzle, Effect, this project, garbage collection,
//    the rest) and shown as µs per operation;
// 2. without the profiler, one call at a time, the call's timeline on the
//    wire: µs before its first socket write, waiting for each reply, and in
//    the client between a reply and the next write or the call's end;
// 3. for validate (one caller) and create with limit (32 callers), the
//    client CPU of each layer with the server taken out (bench/stack.ts).
// Writes profile.json and the profiles as profiles/*.cpuprofile (open them in
// Chrome DevTools) to bench/ or BENCH_RESULTS_DIR.
import { mkdirSync, writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import net from "node:net"
import {
  create_database,
  machine,
  results_dir,
  run_for,
  seed_sessions,
  server_url,
  write_results,
} from "./harness.ts"
import { create_stack_figures, stack_figures } from "./stack.ts"
import { bench_operations, is_operation, OPERATIONS, SEED } from "./variants.ts"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4)
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2)
// concurrent callers while profiling (the wire's timeline takes one call at a time)
const CALLERS = Number(process.env.BENCH_PROFILE_CALLERS ?? 1)
// a sample every 200 µs: finer sampling slows the profiled code itself
const SAMPLING_INTERVAL_US = 200

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string }
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const GROUPS = [
  "waiting (idle)",
  "socket writes",
  "pg",
  "drizzle-orm",
  "effect",
  "this project (dist/)",
  "garbage collection",
  "rest (Node, hashing, bench)",
] as const
type Group = (typeof GROUPS)[number]

// node-postgres and the packages it is made of (pool, protocol, type parsers)
const PG_PACKAGES =
  /\/node_modules\/(pg|pg-(pool|protocol|types|connection-string|int8)|pgpass|postgres-(array|bytea|date|interval))\//

const group_of = ({ functionName, url }: ProfileNode["callFrame"]): Group => {
  if (functionName === "(idle)") return "waiting (idle)"
  if (functionName === "(garbage collector)") return "garbage collection"
  if (url === "" && /^write(Buffer|v|Utf8String|Latin1String)$/.test(functionName)) return "socket writes"
  if (PG_PACKAGES.test(url)) return "pg"
  if (url.includes("/node_modules/drizzle-orm/")) return "drizzle-orm"
  if (url.includes("/node_modules/effect/")) return "effect"
  if (url.includes("/dist/") && !url.includes("/node_modules/")) return "this project (dist/)"
  return "rest (Node, hashing, bench)"
}

/** µs per operation in each group. */
const per_operation = (profile: Profile, operations: number): Record<Group, number> => {
  const group_by_node = new Map(profile.nodes.map((node) => [node.id, group_of(node.callFrame)]))
  const totals = Object.fromEntries(GROUPS.map((group) => [group, 0])) as Record<Group, number>
  // timeDeltas[i] is the gap before sample i: a sample stands for the time until the next one
  profile.samples.forEach((node, i) => {
    const group = group_by_node.get(node) ?? "rest (Node, hashing, bench)"
    totals[group] += profile.timeDeltas[i + 1] ?? 0
  })
  for (const group of GROUPS) totals[group] = Math.round(totals[group] / operations)
  return totals
}

/** Replaces `object[key]` until the returned function puts back what was there. */
const patch = <T extends object, K extends keyof T>(object: T, key: K, value: T[K]): (() => void) => {
  const own = Object.getOwnPropertyDescriptor(object, key)
  object[key] = value
  return () => (own === undefined ? delete object[key] : Object.defineProperty(object, key, own))
}

/**
 * Runs `op` one call at a time for `seconds`, timing its socket writes and the
 * data coming back. Returns µs per call: in the client before the first write;
 * waiting, from each write to the last data received before the next write
 * (per statement, in order); and in the client after each reply (until the
 * next write, or the call's end).
 */
const wire_timeline = async (op: () => Promise<unknown>, seconds: number) => {
  let marks: Array<{ write: boolean; at: number }> = []
  const is_output = (stream: unknown) => stream === process.stdout || stream === process.stderr
  const socket = net.Socket.prototype
  const [write, push] = [socket.write, socket.push]
  // incoming data is timed where the stream receives it (push), before any
  // 'data' listener runs
  const restores = [
    patch(socket, "write", function (this: net.Socket, ...args: Parameters<typeof write>) {
      if (!is_output(this)) marks.push({ write: true, at: performance.now() })
      return write.apply(this, args)
    } as typeof write),
    patch(socket, "push", function (this: net.Socket, ...args: Parameters<typeof push>) {
      if (args[0] !== null && !is_output(this)) marks.push({ write: false, at: performance.now() })
      return push.apply(this, args)
    }),
  ]
  const waits: Array<number> = []
  let [calls, before, after] = [0, 0, 0]
  try {
    const deadline = performance.now() + seconds * 1000
    while (performance.now() < deadline) {
      marks = []
      const start = performance.now()
      await op()
      const end = performance.now()
      if (marks[0]?.write !== true) continue
      calls++
      before += marks[0].at - start
      // a reply ends with the last data before the next write
      let [statement, sent, replied] = [0, 0, 0]
      const close_reply = () => {
        waits[statement] = (waits[statement] ?? 0) + replied - sent
        statement++
        sent = 0
      }
      for (const mark of marks) {
        if (mark.write) {
          if (replied > 0) {
            close_reply()
            after += mark.at - replied
            replied = 0
          }
          if (sent === 0) sent = mark.at
        } else if (sent > 0) replied = mark.at
      }
      if (replied > 0) {
        close_reply()
        after += end - replied
      }
    }
  } finally {
    for (const restore of restores) restore()
  }
  const us = (total: number) => Math.round((1000 * total) / Math.max(1, calls))
  return {
    "client before the first write": us(before),
    "waiting for replies": us(waits.reduce((sum, wait) => sum + wait, 0)),
    "waiting, per statement": waits.map(us).join(" "),
    "client after replies": us(after),
  }
}

const SERVER = server_url("bench:profile")
const named = process.argv.slice(2)
const unknown = named.filter((name) => !is_operation(name))
if (unknown.length > 0)
  throw new Error(`no operation ${unknown.join(", ")}; choose from ${OPERATIONS.join(", ")}`)
const chosen = named.length > 0 ? named.filter(is_operation) : OPERATIONS

const { url, drop } = await create_database(SERVER, "profile")
const inspector = new Session()
inspector.connect()
try {
  const operations = bench_operations(url, await seed_sessions(url, SEED))
  const out = new URL("./profiles/", results_dir())
  mkdirSync(out, { recursive: true })
  await inspector.post("Profiler.enable")
  await inspector.post("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US })
  const results: Record<string, unknown> = { machine: await machine(), seconds: SECONDS, callers: CALLERS }
  for (const operation of chosen) {
    const rows: Array<Record<string, string | number>> = []
    const timelines: Array<Record<string, string | number>> = []
    for (const [variant, open] of operations[operation].slice(0, 2)) {
      const { op, close, restore } = open()
      await restore?.()
      await run_for(op, CALLERS, WARMUP_SECONDS)
      await restore?.()
      await inspector.post("Profiler.start")
      const run = await run_for(op, CALLERS, SECONDS)
      const { profile } = await inspector.post("Profiler.stop")
      await restore?.()
      timelines.push({ variant, ...(await wire_timeline(op, SECONDS)) })
      await close()
      const calls = run.latencies.length
      writeFileSync(
        new URL(`${operation}-${variant.slice(0, 1)}.cpuprofile`.replaceAll(" ", "-"), out),
        JSON.stringify(profile),
      )
      const groups = per_operation(profile as unknown as Profile, calls)
      const total = Object.values(groups).reduce((sum, us) => sum + us, 0)
      rows.push({ variant, "ops/s": Math.round(calls / run.seconds), "µs per op": total, ...groups })
    }
    const callers = CALLERS === 1 ? "one caller" : `${CALLERS} callers`
    console.log(`${operation}, ${callers}, µs per operation by where the samples fell:`)
    console.table(rows)
    console.log(`${operation}, one caller, µs per operation on the wire (no profiler):`)
    console.table(timelines)
    results[operation] = { profile: rows, wire: timelines }
  }
  if (chosen.includes("validate")) {
    results.stack = await stack_figures(Number(process.env.BENCH_STACK_BATCH ?? 5000))
    console.log("validate, client CPU µs per call, layer by layer, no server:")
    console.table(results.stack)
  }
  if (chosen.includes("create with limit")) {
    results.create_stack = await create_stack_figures(Number(process.env.BENCH_STACK_SECONDS ?? 0.3))
    console.log("create with limit, client CPU µs per call at 32 callers, layer by layer, no server:")
    console.table(results.create_stack)
  }
  console.log(results.machine)
  write_results("profile.json", results)
} finally {
  inspector.disconnect()
  await drop()
}
