/**
 * The spans of one request at a replica: a SERVER span that continues the router's attempt span
 * (through the W3C headers), the tokenizer's span (made by the engine inside it), and the three
 * engine phases — queue wait, prefill, decode — recorded when the request ends from the times
 * the engine's worker reported, so the step loop never touches tracing.
 */
import type { Context, Span } from '@opentelemetry/api';
import type { MsgHdrs } from '@nats-io/nats-core';
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import { REPLICA_GENERATE_TEMPLATE } from '../cluster/subjects.ts';
import type { EngineEnd, RequestTimings } from '../engine/types.ts';
import { GEN_AI_ATTRS, SPAN_NAMES, SWITCHYARD_ATTRS, SWITCHYARD_EVENTS } from '../telemetry/attributes.ts';
import { endSpan, setTokenUsage, startReceiveSpan, tracer } from '../telemetry/propagation.ts';

/** A request's span at the replica, and the context to run its work in. */
export interface RequestTrace {
  span: Span;
  context: Context;
}

/** Starts the replica's span of one generate request, a child of the router's attempt span. */
export function startRequestTrace(
  headers: MsgHdrs | undefined,
  subject: string,
  replicaId: string,
  bodySize: number,
): RequestTrace {
  return startReceiveSpan(headers, {
    subject,
    subjectTemplate: REPLICA_GENERATE_TEMPLATE,
    bodySize,
    attributes: { [SWITCHYARD_ATTRS.replicaId]: replicaId },
  });
}

/** Request attributes known once the body is decoded. */
export function describeRequest(
  trace: RequestTrace,
  req: GenerateRequest,
  requestId: string,
  attempt: number,
): void {
  trace.span.setAttributes({
    [GEN_AI_ATTRS.requestModel]: req.model,
    [SWITCHYARD_ATTRS.requestId]: requestId,
    [SWITCHYARD_ATTRS.attempt]: attempt,
    [SWITCHYARD_ATTRS.resumedTokens]: req.resumeTokenIds?.length ?? 0,
    ...(req.maxTokens === undefined ? {} : { [GEN_AI_ATTRS.requestMaxTokens]: req.maxTokens }),
    ...(req.temperature === undefined ? {} : { [GEN_AI_ATTRS.requestTemperature]: req.temperature }),
    ...(req.topP === undefined ? {} : { [GEN_AI_ATTRS.requestTopP]: req.topP }),
  });
}

/** One child span over `[start, end]` of an already finished phase. */
function phase(trace: RequestTrace, name: string, start: number | undefined, end: number | undefined): void {
  if (start === undefined || end === undefined) return;
  tracer().startSpan(name, { startTime: start }, trace.context).end(Math.max(start, end));
}

/**
 * Ends the request's span: its engine phases as child spans, usage and finish reason on success,
 * the error otherwise.
 */
export function endRequestTrace(
  trace: RequestTrace,
  timings: Readonly<RequestTimings> | undefined,
  outcome: { end: EngineEnd; model: string } | { error: unknown },
): void {
  if (timings !== undefined) {
    const endedAt = timings.endedAt ?? Date.now();
    phase(trace, SPAN_NAMES.queueWait, timings.queuedAt, timings.prefillStartedAt ?? endedAt);
    phase(trace, SPAN_NAMES.prefill, timings.prefillStartedAt, timings.firstTokenAt);
    phase(trace, SPAN_NAMES.decode, timings.firstTokenAt, endedAt);
    if (timings.firstTokenAt !== undefined)
      trace.span.addEvent(SWITCHYARD_EVENTS.firstToken, timings.firstTokenAt);
    if (timings.prefillBatchSize !== undefined) {
      trace.span.setAttribute(SWITCHYARD_ATTRS.batchSize, timings.prefillBatchSize);
    }
  }
  if ('error' in outcome) return endSpan(trace.span, outcome.error);
  const { end, model } = outcome;
  setTokenUsage(trace.span, {
    inputTokens: end.usage.promptTokens,
    outputTokens: end.usage.completionTokens,
  });
  trace.span.setAttributes({
    [GEN_AI_ATTRS.responseFinishReasons]: [end.finishReason],
    [GEN_AI_ATTRS.responseModel]: model,
  });
  endSpan(trace.span);
}
