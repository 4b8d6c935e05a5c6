import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROOT_CONTEXT, context, trace } from '@opentelemetry/api';
import { LOG_TRACE_FIELDS, traceMixin } from '../../src/telemetry/log-context.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { tracer } from '../../src/telemetry/propagation.ts';
import { initTracing, type Tracing } from '../../src/telemetry/tracing.ts';

/** A pino destination that keeps the lines written to it. */
function capture(): { write(line: string): void; lines(): Record<string, unknown>[] } {
  const chunks: string[] = [];
  return {
    write: (line) => void chunks.push(line),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('trace ids on log lines', () => {
  let tracing: Tracing;

  // No exporter: the provider still makes spans with real ids, which is what logs need.
  before(() => {
    tracing = initTracing({ serviceName: 'switchyard', actorId: 'bridge-1', role: 'bridge', env: {} });
  });
  after(() => tracing.shutdown());

  it('adds the active span’s trace_id and span_id to every line logged inside it', () => {
    const out = capture();
    const log = createLogger({ role: 'bridge', id: 'bridge-1', level: 'info', destination: out });
    const span = tracer().startSpan('request');
    context.with(trace.setSpan(ROOT_CONTEXT, span), () => {
      log.info({ requestId: 'r1' }, 'inside');
      log.child({ requestId: 'r1' }).warn('inside, child logger');
    });
    span.end();
    log.info({ requestId: 'r2' }, 'outside');

    const [inside, child, outside] = out.lines();
    const sc = span.spanContext();
    for (const line of [inside, child]) {
      assert.equal(line?.[LOG_TRACE_FIELDS.traceId], sc.traceId);
      assert.equal(line?.[LOG_TRACE_FIELDS.spanId], sc.spanId);
      assert.equal(line?.[LOG_TRACE_FIELDS.traceFlags], '01');
      assert.equal(line?.requestId, 'r1');
      assert.equal(line?.role, 'bridge');
      assert.equal(line?.actor, 'bridge-1');
    }
    assert.match(String(inside?.[LOG_TRACE_FIELDS.traceId]), /^[0-9a-f]{32}$/);
    assert.equal(outside?.msg, 'outside');
    assert.equal(outside?.requestId, 'r2');
    assert.equal(LOG_TRACE_FIELDS.traceId in (outside ?? {}), false, 'no trace id outside a span');
  });

  it('follows the context across awaits', async () => {
    const out = capture();
    const log = createLogger({ role: 'bridge', id: 'bridge-1', level: 'info', destination: out });
    const span = tracer().startSpan('request');
    await context.with(trace.setSpan(ROOT_CONTEXT, span), async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      log.info('after a timer');
    });
    span.end();
    assert.equal(out.lines()[0]?.[LOG_TRACE_FIELDS.traceId], span.spanContext().traceId);
  });

  it('returns a fresh object each call (pino merges the line’s own fields into it)', () => {
    const a = traceMixin();
    const b = traceMixin();
    assert.notEqual(a, b);
    assert.equal(Object.isExtensible(a), true);
  });
});
