import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context,
  trace,
  type SpanContext,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { headers } from '@nats-io/nats-core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { HEADERS } from '../../src/cluster/headers.ts';
import { BusyError } from '../../src/errors/errors.ts';
import { ERROR_TYPE_ATTR, MESSAGING_ATTRS } from '../../src/telemetry/attributes.ts';
import {
  TRACE_HEADERS,
  endSpan,
  extractTrace,
  injectTrace,
  startReceiveSpan,
  startSendSpan,
  tracer,
} from '../../src/telemetry/propagation.ts';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const SPAN_ID = 'b7ad6b7169203331';
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`;

function remoteContext(sc: Partial<SpanContext> = {}) {
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: TRACE_ID,
    spanId: SPAN_ID,
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    ...sc,
  });
}

describe('trace context in NATS headers, with no provider installed', () => {
  it('uses the protocol header names, which are the W3C ones', () => {
    assert.deepEqual([...TRACE_HEADERS], new W3CTraceContextPropagator().fields());
    assert.deepEqual([...TRACE_HEADERS], [HEADERS.traceparent, HEADERS.tracestate]);
  });

  it('passes an incoming context through unchanged (a hop without tracing keeps the trace)', () => {
    const incoming = headers();
    incoming.set(HEADERS.traceparent, TRACEPARENT);
    incoming.set(HEADERS.tracestate, 'vendor=abc');
    const outgoing = injectTrace(extractTrace(incoming), headers());
    assert.equal(outgoing.get(HEADERS.traceparent), TRACEPARENT);
    assert.equal(outgoing.get(HEADERS.tracestate), 'vendor=abc');
  });

  it('writes nothing, and removes stale trace headers, for a context without a span', () => {
    const h = headers();
    h.set('Traceparent', TRACEPARENT);
    h.set(HEADERS.requestId, 'r1');
    injectTrace(ROOT_CONTEXT, h);
    assert.deepEqual(h.keys(), [HEADERS.requestId]);
  });

  it('replaces a stale traceparent with the context given', () => {
    const h = headers();
    h.set(HEADERS.traceparent, TRACEPARENT);
    const other = '1'.repeat(32);
    injectTrace(remoteContext({ traceId: other }), h);
    assert.equal(h.get(HEADERS.traceparent), `00-${other}-${SPAN_ID}-01`);
    assert.deepEqual(h.values(HEADERS.traceparent), [`00-${other}-${SPAN_ID}-01`]);
  });

  it('extracts the span context, whatever the case of the header name', () => {
    const h = headers();
    h.set('Traceparent', TRACEPARENT);
    const sc = trace.getSpanContext(extractTrace(h));
    assert.equal(sc?.traceId, TRACE_ID);
    assert.equal(sc?.spanId, SPAN_ID);
    assert.equal(sc?.isRemote, true);
    assert.equal(sc?.traceFlags, TraceFlags.SAMPLED);
  });

  it('ignores missing, malformed and over-long trace headers', () => {
    assert.equal(extractTrace(undefined), ROOT_CONTEXT);
    assert.equal(trace.getSpanContext(extractTrace(headers())), undefined);
    for (const bad of [
      'garbage',
      `00-${'0'.repeat(32)}-${SPAN_ID}-01`,
      `${TRACEPARENT}-${'x'.repeat(2_000)}`,
    ]) {
      const h = headers();
      h.set(HEADERS.traceparent, bad);
      assert.equal(trace.getSpanContext(extractTrace(h)), undefined, bad.slice(0, 60));
    }
  });
});

describe('message spans', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });

  before(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(provider);
  });
  after(async () => {
    trace.disable();
    context.disable();
    await provider.shutdown();
  });

  it('starts a CLIENT span under the active context and injects it', () => {
    exporter.reset();
    const parent = tracer().startSpan('parent');
    const h = headers();
    const { span, context: ctx } = context.with(trace.setSpan(context.active(), parent), () =>
      startSendSpan(h, {
        subject: 'sy.v1.replica.r1.generate',
        subjectTemplate: 'sy.v1.replica.{id}.generate',
      }),
    );
    endSpan(span);
    parent.end();
    const sc = span.spanContext();
    assert.equal(trace.getSpan(ctx), span);
    assert.equal(h.get(HEADERS.traceparent), `00-${sc.traceId}-${sc.spanId}-01`);
    const [finished] = exporter.getFinishedSpans();
    assert.ok(finished);
    assert.equal(finished.name, 'send sy.v1.replica.{id}.generate');
    assert.equal(finished.kind, SpanKind.CLIENT);
    assert.equal(finished.parentSpanContext?.spanId, parent.spanContext().spanId);
    assert.equal(sc.traceId, parent.spanContext().traceId);
    assert.deepEqual(finished.attributes, {
      [MESSAGING_ATTRS.system]: 'nats',
      [MESSAGING_ATTRS.destinationName]: 'sy.v1.replica.r1.generate',
      [MESSAGING_ATTRS.destinationTemplate]: 'sy.v1.replica.{id}.generate',
      [MESSAGING_ATTRS.operationType]: 'send',
      [MESSAGING_ATTRS.operationName]: 'send',
    });
  });

  it('starts a PRODUCER span for a publish and a CONSUMER span for its receipt', () => {
    exporter.reset();
    const h = headers();
    const sent = startSendSpan(h, { subject: 'sy.v1.events', pattern: 'publish' }, ROOT_CONTEXT);
    const received = startReceiveSpan(h, { subject: 'sy.v1.events', pattern: 'publish', queueGroup: 'g' });
    endSpan(received.span);
    endSpan(sent.span);
    const [consumer, producer] = exporter.getFinishedSpans();
    assert.equal(producer?.kind, SpanKind.PRODUCER);
    assert.equal(consumer?.kind, SpanKind.CONSUMER);
    assert.equal(consumer?.parentSpanContext?.spanId, sent.span.spanContext().spanId);
    assert.equal(consumer?.parentSpanContext?.isRemote, true);
    assert.equal(consumer?.attributes[MESSAGING_ATTRS.consumerGroupName], 'g');
    assert.equal(consumer?.name, 'process sy.v1.events');
  });

  it('continues the trace the headers carry with a SERVER span, not the active one', () => {
    exporter.reset();
    const h = headers();
    h.set(HEADERS.traceparent, TRACEPARENT);
    const unrelated = tracer().startSpan('subscription loop');
    const { span } = context.with(trace.setSpan(ROOT_CONTEXT, unrelated), () =>
      startReceiveSpan(h, { subject: 'sy.v1.generate' }),
    );
    endSpan(span);
    unrelated.end();
    const [server] = exporter.getFinishedSpans();
    assert.equal(server?.kind, SpanKind.SERVER);
    assert.equal(server?.spanContext().traceId, TRACE_ID);
    assert.equal(server?.parentSpanContext?.spanId, SPAN_ID);
  });

  it('starts a new trace for a message without trace headers', () => {
    const { span } = startReceiveSpan(headers(), { subject: 'sy.v1.generate' });
    endSpan(span);
    assert.notEqual(span.spanContext().traceId, TRACE_ID);
    assert.equal(
      trace.getSpanContext(extractTrace(injectTrace(trace.setSpan(ROOT_CONTEXT, span), headers())))?.spanId,
      span.spanContext().spanId,
    );
  });

  it('marks a failed span with error.type and the exception', () => {
    exporter.reset();
    const a = tracer().startSpan('a');
    endSpan(a, new BusyError('queue full'));
    const b = tracer().startSpan('b');
    endSpan(b, new TypeError('boom'));
    const [busy, typeError] = exporter.getFinishedSpans();
    assert.equal(busy?.status.code, SpanStatusCode.ERROR);
    assert.equal(busy?.status.message, 'queue full');
    assert.equal(busy?.attributes[ERROR_TYPE_ATTR], 'busy');
    assert.equal(busy?.events[0]?.name, 'exception');
    assert.equal(typeError?.attributes[ERROR_TYPE_ATTR], 'TypeError');
  });
});
