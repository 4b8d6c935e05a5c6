/**
 * Trace ids on log lines. pino's OpenTelemetry instrumentation patches `require` and does
 * nothing under ESM (DESIGN.md "Pitfalls"), so a pino `mixin` reads the active span instead:
 * every line logged inside a request's context carries the request's trace and span id, and a
 * log search for one trace id finds its lines in every actor.
 */
import { isSpanContextValid, trace } from '@opentelemetry/api';

/** Log fields added inside a span, named as the OpenTelemetry log data model names them. */
export const LOG_TRACE_FIELDS = {
  traceId: 'trace_id',
  spanId: 'span_id',
  traceFlags: 'trace_flags',
} as const;

/** The fields added to a line logged inside a span. */
export type TraceLogFields = Partial<
  Record<(typeof LOG_TRACE_FIELDS)[keyof typeof LOG_TRACE_FIELDS], string>
>;

/**
 * A pino mixin: `trace_id`, `span_id` and `trace_flags` of the active span, or nothing outside
 * one. Runs synchronously at the log call, so it sees the caller's context even with pino's
 * asynchronous destination. Returns a fresh object every call: pino's default merge strategy
 * writes the call's own fields into it.
 */
export function traceMixin(): TraceLogFields {
  const span = trace.getActiveSpan();
  if (span === undefined) return {};
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return {};
  return {
    [LOG_TRACE_FIELDS.traceId]: sc.traceId,
    [LOG_TRACE_FIELDS.spanId]: sc.spanId,
    [LOG_TRACE_FIELDS.traceFlags]: sc.traceFlags.toString(16).padStart(2, '0'),
  };
}
