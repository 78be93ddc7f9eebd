import { Context, Effect, Tracer } from "effect"

// A span costs every call (made, timed, and a context change for what runs
// inside it), yet with Effect's native tracer, the default when no tracing
// backend is installed, nothing ever reads it. Effect documents comparing
// the current tracer with `nativeTracer` for exactly this.

/** Whether spans made with `context` reach a tracing backend. */
export const is_traced = (context: Context.Context<never>): boolean =>
  Context.get(context, Tracer.Tracer) !== Tracer.nativeTracer

/** `effect` in the span `name` (no stack trace) when a tracing backend is installed; as it is otherwise. */
export const traced_as =
  (name: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.contextWith((context: Context.Context<never>) =>
      is_traced(context) ? Effect.withSpan(effect, name, { captureStackTrace: false }) : effect,
    ) as Effect.Effect<A, E, R>
