import { Cause, Exit, Layer, Logger, Tracer } from "effect"

/**
 * Every log line and span of the suites that run on the test backends, so a
 * check after each file can prove no secret reached them (see secrecy-check.ts).
 */
export const recorded_logs: Array<string> = []
export const recorded_spans: Array<Tracer.NativeSpan> = []

const capture = Logger.map(Logger.formatLogFmt, (line) => {
  recorded_logs.push(line)
})

const recording_tracer = Tracer.make({
  span(options) {
    const span = new Tracer.NativeSpan(options)
    recorded_spans.push(span)
    return span
  },
})

export const recording_layer = Layer.mergeAll(
  Logger.layer([capture], { mergeWithExisting: true }),
  Layer.succeed(Tracer.Tracer, recording_tracer),
)

/** What an exporter would send of a span: name, attributes, events, and a failure's cause. */
export const span_text = (span: Tracer.NativeSpan): string =>
  JSON.stringify({
    name: span.name,
    attributes: [...span.attributes],
    events: span.events,
    failure:
      span.status._tag === "Ended" && Exit.isFailure(span.status.exit)
        ? Cause.pretty(span.status.exit.cause)
        : null,
  })
