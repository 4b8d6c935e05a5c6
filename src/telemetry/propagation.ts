/**
 * THE one module that carries W3C trace context over NATS headers. No maintained NATS
 * instrumentation exists for JavaScript, so every hop that sends or receives a message makes its
 * span with these helpers: an outgoing message gets a CLIENT span (request-reply) or a PRODUCER
 * span (publish) whose context is injected into the headers; an incoming one gets a SERVER or
 * CONSUMER span that is a child of the context the headers carry. One trace then covers the
 * whole request path, all processes included.
 *
 * The W3C format comes from the SDK's own propagator, used directly (not through the global
 * one) so context passes through an actor even before or without `initTracing`; the header
 * names are the protocol's (HEADERS in cluster/headers.ts).
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
} from '@opentelemetry/api';
import type { IncomingHttpHeaders } from 'node:http';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { Match, type MsgHdrs } from '@nats-io/nats-core';
import { HEADERS, TRACE_HEADER_MAX_LENGTH } from '../cluster/headers.ts';
import { SwitchyardError } from '../errors/errors.ts';
import {
  ERROR_TYPE_ATTR,
  GEN_AI_ATTRS,
  MESSAGING_ATTRS,
  MESSAGING_OPERATION,
  MESSAGING_SYSTEM_NATS,
} from './attributes.ts';

/** Instrumentation scope of every switchyard span. */
export const TRACER_NAME = 'switchyard';

/** The trace headers this module reads and writes, in the protocol's spelling. */
export const TRACE_HEADERS = [HEADERS.traceparent, HEADERS.tracestate] as const;

const w3c = new W3CTraceContextPropagator();

/** Maps the propagator's lower-case field names to the protocol's header names. */
function headerName(field: string): string | undefined {
  return TRACE_HEADERS.find((name) => name.toLowerCase() === field.toLowerCase());
}

const setter: TextMapSetter<MsgHdrs> = {
  set(carrier, key, value) {
    const name = headerName(key);
    if (name !== undefined && value.length <= TRACE_HEADER_MAX_LENGTH) carrier.set(name, value);
  },
};

const getter: TextMapGetter<MsgHdrs> = {
  keys: (carrier) => carrier.keys(),
  get(carrier, key) {
    const name = headerName(key);
    // Peers in other languages may canonicalise names (`Traceparent`): match any case. An
    // over-long value is dropped rather than parsed, so a hostile peer cannot make us work.
    const value = name === undefined ? '' : carrier.get(name, Match.IgnoreCase);
    return value === '' || value.length > TRACE_HEADER_MAX_LENGTH ? undefined : value;
  },
};

/** The tracer of switchyard spans (the global provider's; a no-op before `initTracing`). */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/**
 * Writes the span context of `ctx` into `headers` as `traceparent`/`tracestate`, replacing any
 * already there (headers forwarded from an earlier hop must not carry a stale parent). Writes
 * nothing when `ctx` holds no valid span context.
 */
export function injectTrace(ctx: Context, headers: MsgHdrs): MsgHdrs {
  for (const name of TRACE_HEADERS) headers.delete(name, Match.IgnoreCase);
  w3c.inject(ctx, headers, setter);
  return headers;
}

/**
 * The context the headers carry, on top of `base`; `base` itself when they carry none or a
 * malformed one. The default base is the root context, not the active one: a message starts its
 * own unit of work, and whatever happened to be active in the subscription loop is no parent of it.
 */
export function extractTrace(headers: MsgHdrs | undefined, base: Context = ROOT_CONTEXT): Context {
  return headers === undefined ? base : w3c.extract(base, headers, getter);
}

const httpGetter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get(carrier, key) {
    const value = carrier[key.toLowerCase()];
    const first = Array.isArray(value) ? value[0] : value;
    return first === undefined || first === '' || first.length > TRACE_HEADER_MAX_LENGTH ? undefined : first;
  },
};

/**
 * Starts the SERVER span of an incoming HTTP request, a child of its `traceparent` header when it
 * has a valid one (a caller's own trace continues through the bridge), else a new trace.
 */
export function startHttpServerSpan(
  headers: IncomingHttpHeaders,
  name: string,
  attributes: Attributes,
): MessageSpan {
  const parent = w3c.extract(ROOT_CONTEXT, headers, httpGetter);
  const span = tracer().startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** Request-reply (CLIENT/SERVER spans) or fire-and-forget publish (PRODUCER/CONSUMER spans). */
export type MessagePattern = 'request' | 'publish';

/** What a message span describes. */
export interface MessageSpanOptions {
  /** Span name, where the operation has a better one (`route`). @default `<operation> <subject template>` */
  name?: string;
  /** The subject the message is sent to or arrived on: `messaging.destination.name`. */
  subject: string;
  /**
   * Low-cardinality form of the subject for the span name and `messaging.destination.template`,
   * e.g. `sy.v1.replica.{id}.generate`. @default the subject
   */
  subjectTemplate?: string;
  /** @default 'request' */
  pattern?: MessagePattern;
  /** The queue group the message was received in. @default none */
  queueGroup?: string;
  /** Payload size in bytes. @default none */
  bodySize?: number;
  /** More attributes, e.g. GenAI or `switchyard.*` ones. @default none */
  attributes?: Attributes;
}

/** A started span and the context that has it active (to run work in, or to inject). */
export interface MessageSpan {
  span: Span;
  context: Context;
}

function messageAttributes(opts: MessageSpanOptions, operation: string): Attributes {
  const attributes: Attributes = {
    [MESSAGING_ATTRS.system]: MESSAGING_SYSTEM_NATS,
    [MESSAGING_ATTRS.destinationName]: opts.subject,
    [MESSAGING_ATTRS.operationType]: operation,
    [MESSAGING_ATTRS.operationName]: operation,
  };
  if (opts.subjectTemplate !== undefined) {
    attributes[MESSAGING_ATTRS.destinationTemplate] = opts.subjectTemplate;
  }
  if (opts.queueGroup !== undefined) attributes[MESSAGING_ATTRS.consumerGroupName] = opts.queueGroup;
  if (opts.bodySize !== undefined) attributes[MESSAGING_ATTRS.bodySize] = opts.bodySize;
  return { ...attributes, ...opts.attributes };
}

/**
 * Starts the span of an outgoing message as a child of `parent` (CLIENT for a request, PRODUCER
 * for a publish) and injects it into `headers`, so the receiver's span becomes its child.
 */
export function startSendSpan(
  headers: MsgHdrs,
  opts: MessageSpanOptions,
  parent: Context = context.active(),
): MessageSpan {
  const operation = MESSAGING_OPERATION.send;
  const span = tracer().startSpan(
    opts.name ?? `${operation} ${opts.subjectTemplate ?? opts.subject}`,
    {
      kind: opts.pattern === 'publish' ? SpanKind.PRODUCER : SpanKind.CLIENT,
      attributes: messageAttributes(opts, operation),
    },
    parent,
  );
  const ctx = trace.setSpan(parent, span);
  injectTrace(ctx, headers);
  return { span, context: ctx };
}

/**
 * Starts the span of an incoming message (SERVER for a request, CONSUMER for a publish) as a
 * child of the context its headers carry; a message without one starts a new trace.
 */
export function startReceiveSpan(headers: MsgHdrs | undefined, opts: MessageSpanOptions): MessageSpan {
  const parent = extractTrace(headers);
  const operation = MESSAGING_OPERATION.process;
  const span = tracer().startSpan(
    opts.name ?? `${operation} ${opts.subjectTemplate ?? opts.subject}`,
    {
      kind: opts.pattern === 'publish' ? SpanKind.CONSUMER : SpanKind.SERVER,
      attributes: messageAttributes(opts, operation),
    },
    parent,
  );
  return { span, context: trace.setSpan(parent, span) };
}

/**
 * Ends a span; with an error, marks it failed with `error.type` (the switchyard error code, or
 * the class name of another Error, `_OTHER` as the convention says for the rest) and records
 * the exception.
 */
export function endSpan(span: Span, err?: unknown): void {
  if (err !== undefined) {
    const type = err instanceof SwitchyardError ? err.code : err instanceof Error ? err.name : '_OTHER';
    const message =
      err instanceof Error ? err.message : typeof err === 'string' ? err : `non-Error thrown (${typeof err})`;
    span.setAttribute(ERROR_TYPE_ATTR, type);
    span.setStatus({ code: SpanStatusCode.ERROR, message });
    span.recordException(err instanceof Error ? err : message);
  }
  span.end();
}

/** Token counts of a generation, as GenAI usage attributes. */
export interface TokenUsage {
  inputTokens?: number;
  outputTokens?: number;
}

/** Sets `gen_ai.usage.input_tokens` / `gen_ai.usage.output_tokens` on a span. */
export function setTokenUsage(span: Span, usage: TokenUsage): void {
  if (usage.inputTokens !== undefined) span.setAttribute(GEN_AI_ATTRS.usageInputTokens, usage.inputTokens);
  if (usage.outputTokens !== undefined) {
    span.setAttribute(GEN_AI_ATTRS.usageOutputTokens, usage.outputTokens);
  }
}

/**
 * Runs `work` synchronously in an INTERNAL span, a child of the active context (the tokenizer's
 * span inside a replica's request span); an exception marks the span failed and is rethrown.
 */
export function inSpan<T>(name: string, work: (span: Span) => T, attributes?: Attributes): T {
  const span = tracer().startSpan(name, attributes === undefined ? {} : { attributes });
  try {
    const result = work(span);
    span.end();
    return result;
  } catch (err) {
    endSpan(span, err);
    throw err;
  }
}
