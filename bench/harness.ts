// Measuring helpers for the benchmarks: throughput and latency of one
// operation run by N concurrent workers for a fixed time.

export interface Figures {
  readonly ops_per_s: number
  readonly p50_ms: number
  readonly p99_ms: number
}

/** Runs `op` from `concurrency` workers for `seconds`; returns its latencies (ms) and the elapsed time. */
export const run_for = async (op: () => Promise<unknown>, concurrency: number, seconds: number) => {
  const latencies: Array<number> = []
  const deadline = performance.now() + seconds * 1000
  const worker = async () => {
    while (performance.now() < deadline) {
      const start = performance.now()
      await op()
      latencies.push(performance.now() - start)
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, worker))
  return { latencies, seconds: (performance.now() - started) / 1000 }
}

/** Throughput and p50/p99 latency over several measured slices of one operation. */
export const summarize = (slices: ReadonlyArray<{ latencies: Array<number>; seconds: number }>): Figures => {
  const latencies = slices.flatMap((slice) => slice.latencies).sort((x, y) => x - y)
  const seconds = slices.reduce((sum, slice) => sum + slice.seconds, 0)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  return {
    ops_per_s: Math.round(latencies.length / seconds),
    p50_ms: round3(at(0.5)),
    p99_ms: round3(at(0.99)),
  }
}

export const round3 = (x: number): number => Math.round(x * 1000) / 1000

export const ratio = (x: Figures | undefined, y: Figures | undefined): number | undefined =>
  x === undefined || y === undefined ? undefined : Math.round((100 * x.ops_per_s) / y.ops_per_s) / 100

export const machine = async (): Promise<string> => {
  const os = await import("node:os")
  const cpu = os.cpus()[0]?.model ?? "unknown cpu"
  return `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${process.platform} ${process.arch}, Node ${process.version}`
}
