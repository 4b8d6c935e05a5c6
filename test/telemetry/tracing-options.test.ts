import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StartupError } from '../../src/errors/errors.ts';
import {
  DEFAULT_BSP_MAX_QUEUE_SIZE,
  DEFAULT_TRACING_SHUTDOWN_TIMEOUT_MS,
  compileTracingOptions,
  type CompiledTracingOptions,
} from '../../src/telemetry/tracing-options.ts';

const BASE = { serviceName: 'switchyard', actorId: 'router-1', role: 'router' };

function compile(env: Record<string, string>): CompiledTracingOptions {
  return compileTracingOptions({ ...BASE, env });
}

function rejects(env: Record<string, string>, variable: string): void {
  assert.throws(
    () => compile(env),
    (err: unknown) =>
      err instanceof StartupError && err.reason === 'config' && err.message.includes(variable),
  );
}

describe('compileTracingOptions', () => {
  it('exports nothing when nothing is configured', () => {
    const o = compile({});
    assert.equal(o.exporter, 'none');
    assert.equal(o.url, undefined);
    assert.equal(o.disabled, false);
    assert.equal(o.sampler, 'parentbased_always_on');
    assert.equal(o.samplerRatio, 1);
    assert.equal(o.protocol, 'http/protobuf');
    assert.equal(o.maxQueueSize, DEFAULT_BSP_MAX_QUEUE_SIZE);
    assert.equal(o.shutdownTimeoutMs, DEFAULT_TRACING_SHUTDOWN_TIMEOUT_MS);
    assert.equal(o.serviceName, 'switchyard');
  });

  it('treats empty values as unset', () => {
    const o = compile({
      OTEL_EXPORTER_OTLP_ENDPOINT: '',
      OTEL_TRACES_EXPORTER: ' ',
      OTEL_TRACES_SAMPLER: '',
    });
    assert.equal(o.exporter, 'none');
    assert.equal(o.sampler, 'parentbased_always_on');
  });

  it('exports over OTLP once an endpoint is set, appending /v1/traces to the base endpoint', () => {
    assert.equal(compile({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).url, 'http://c:4318/v1/traces');
    assert.equal(compile({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }).url, 'http://c:4318/v1/traces');
    assert.equal(compile({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c/otel' }).url, 'https://c/otel/v1/traces');
    assert.equal(compile({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).exporter, 'otlp');
  });

  it('uses the traces endpoint as given, before the base endpoint', () => {
    const o = compile({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom',
    });
    assert.equal(o.exporter, 'otlp');
    assert.equal(o.url, 'http://traces:9999/custom');
  });

  it('honours OTEL_TRACES_EXPORTER: none wins over an endpoint, otlp alone uses the default endpoint', () => {
    assert.equal(
      compile({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).url,
      undefined,
    );
    const o = compile({ OTEL_TRACES_EXPORTER: 'OTLP' });
    assert.equal(o.exporter, 'otlp');
    assert.equal(o.url, 'http://localhost:4318/v1/traces');
  });

  it('reads the protocol, traces-specific first', () => {
    assert.equal(compile({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }).protocol, 'http/json');
    assert.equal(
      compile({
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      }).protocol,
      'http/protobuf',
    );
  });

  it('reads the sampler and its ratio', () => {
    const o = compile({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' });
    assert.equal(o.sampler, 'parentbased_traceidratio');
    assert.equal(o.samplerRatio, 0.25);
    assert.equal(
      compile({ OTEL_TRACES_SAMPLER: 'always_off', OTEL_TRACES_SAMPLER_ARG: 'x' }).samplerRatio,
      1,
    );
  });

  it('names the service by OTEL_SERVICE_NAME and reads OTEL_RESOURCE_ATTRIBUTES', () => {
    const o = compile({
      OTEL_SERVICE_NAME: 'sy-prod',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod, k8s.pod.name=a%2Cb',
    });
    assert.equal(o.serviceName, 'sy-prod');
    assert.deepEqual(o.resourceAttributes, { 'deployment.environment.name': 'prod', 'k8s.pod.name': 'a,b' });
  });

  it('reads the batch processor limits', () => {
    const o = compile({ OTEL_BSP_MAX_QUEUE_SIZE: '100', OTEL_BSP_SCHEDULE_DELAY: '250' });
    assert.equal(o.maxQueueSize, 100);
    assert.equal(o.maxExportBatchSize, 100, 'the default batch shrinks to fit a smaller queue');
    assert.equal(o.scheduledDelayMs, 250);
  });

  it('is disabled by OTEL_SDK_DISABLED=true', () => {
    assert.equal(compile({ OTEL_SDK_DISABLED: 'TRUE' }).disabled, true);
    assert.equal(compile({ OTEL_SDK_DISABLED: 'false' }).disabled, false);
  });

  it('rejects malformed values, naming the variable', () => {
    rejects({ OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER');
    rejects({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL');
    rejects({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'thrift' }, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL');
    rejects({ OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT');
    rejects({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'not a url' }, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
    rejects({ OTEL_TRACES_SAMPLER: 'jaeger_remote' }, 'OTEL_TRACES_SAMPLER');
    rejects(
      { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' },
      'OTEL_TRACES_SAMPLER_ARG',
    );
    rejects({ OTEL_BSP_MAX_QUEUE_SIZE: '0' }, 'OTEL_BSP_MAX_QUEUE_SIZE');
    rejects(
      { OTEL_BSP_MAX_QUEUE_SIZE: '10', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '20' },
      'OTEL_BSP_MAX_EXPORT_BATCH_SIZE',
    );
    rejects({ OTEL_RESOURCE_ATTRIBUTES: 'novalue' }, 'OTEL_RESOURCE_ATTRIBUTES');
  });
});
