import { Cause, Exit, Layer, Logger, Tracer } from "effect"

/** What an exporter would send of a span: name, attributes, events, and a failure's cause. */
export const span_text = (span: Tracer.NativeSpan): string =>
  JSON.stringify(
    {
      name: span.name,
      attributes: [...span.attributes],
      events: span.events,
      failure:
        span.status._tag === "Ended" && Exit.isFailure(span.status.exit)
          ? Cause.pretty(span.status.exit.cause)
          : null,
    },
    // an event's time is a bigint
    (_, value) => (typeof value === "bigint" ? value.toString() : value),
  )

/** Keeps every log line and span of the effects it is provided to. */
export const make_recorder = () => {
  const logs: Array<string> = []
  const spans: Array<Tracer.NativeSpan> = []
  const logger = Logger.map(Logger.formatLogFmt, (line) => {
    logs.push(line)
  })
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    },
  })
  return {
    logs,
    spans,
    logger,
    tracer,
    /** As a layer, keeping the loggers already installed. */
    layer: Layer.mergeAll(
      Logger.layer([logger], { mergeWithExisting: true }),
      Layer.succeed(Tracer.Tracer, tracer),
    ),
    texts: () => [...logs, ...spans.map(span_text)],
  }
}

/**
 * Everything the backend suites of one test file log and trace; checked for
 * secrets after the file (see secrecy-check.ts).
 */
export const suite_recorder = make_recorder()
