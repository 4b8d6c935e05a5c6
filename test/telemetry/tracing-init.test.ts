import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { tracer } from '../../src/telemetry/propagation.ts';
import { initTracing } from '../../src/telemetry/tracing.ts';

const BASE = { serviceName: 'switchyard', actorId: 'router-1', role: 'router' };

function remoteParent(sampled: boolean) {
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
  });
}

describe('initTracing in one process', () => {
  it('installs one provider; a second call is inactive; shutdown runs once and uninstalls it', async () => {
    const first = initTracing({ ...BASE, env: {} });
    const second = initTracing({ ...BASE, actorId: 'router-2', env: {} });
    assert.equal(first.active, true);
    assert.equal(second.active, false);
    assert.equal(tracer().startSpan('x').isRecording(), true);
    await second.shutdown();
    assert.equal(
      tracer().startSpan('x').isRecording(),
      true,
      "the inactive handle does not stop the owner's",
    );

    const stopping = first.shutdown();
    assert.equal(first.shutdown(), stopping, 'shutdown runs once');
    await stopping;
    assert.equal(tracer().startSpan('x').isRecording(), false, 'after shutdown the API is a no-op again');
    const again = initTracing({ ...BASE, env: {} });
    assert.equal(again.active, true, 'and can be installed anew');
    await again.shutdown();
  });

  it('samples by OTEL_TRACES_SAMPLER: ratio 0 drops new traces but follows a sampled parent', async () => {
    const tracing = initTracing({
      ...BASE,
      env: { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' },
    });
    try {
      assert.equal(tracing.active, true);
      assert.equal(tracer().startSpan('root').isRecording(), false);
      assert.equal(tracer().startSpan('child', {}, remoteParent(true)).isRecording(), true);
      assert.equal(tracer().startSpan('child', {}, remoteParent(false)).isRecording(), false);
    } finally {
      await tracing.shutdown();
    }
  });

  it('installs nothing when OTEL_SDK_DISABLED=true', async () => {
    const tracing = initTracing({ ...BASE, env: { OTEL_SDK_DISABLED: 'true' } });
    assert.equal(tracing.active, false);
    assert.equal(tracer().startSpan('x').isRecording(), false);
    await tracing.shutdown();
  });
});
