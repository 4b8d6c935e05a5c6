/**
 * Tracing across processes: child processes configured only by OTEL_* environment export to an
 * OTLP receiver on loopback, and a trace started in one continues in the other through NATS
 * headers. Also: no configuration means no network and a quick, quiet shutdown; an unreachable
 * collector costs a bounded shutdown and a log line, never a crash.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { envWithoutOtel } from '../helpers/env.ts';
import { freePort, NatsServer } from '../helpers/nats-server.ts';
import { MESSAGING_ATTRS, GEN_AI_ATTRS, SWITCHYARD_ATTRS } from '../../src/telemetry/attributes.ts';
import { LOG_TRACE_FIELDS } from '../../src/telemetry/log-context.ts';
import { DEFAULT_TRACING_SHUTDOWN_TIMEOUT_MS } from '../../src/telemetry/tracing-options.ts';
import { OTLP_KIND, OtlpReceiver, type ReceivedSpan } from './otlp-receiver.ts';
import { FIXTURE_LOG_MESSAGE, FIXTURE_QUEUE_GROUP, FIXTURE_SUBJECT_TEMPLATE } from './trace-fixture.ts';

const FIXTURE = fileURLToPath(new URL('./trace-fixture.ts', import.meta.url));
/** How long one fixture process may run. */
const CHILD_TIMEOUT_MS = 20_000;

/** The environment without any OTEL_* variable of the machine running the tests. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return envWithoutOtel({ SWITCHYARD_LOG_LEVEL: 'info', ...extra });
}

interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The JSON of the last stdout line. */
  result: Record<string, unknown>;
  wallMs: number;
}

interface Child {
  ready: Promise<void>;
  done: Promise<ChildResult>;
}

function runFixture(args: string[], env: NodeJS.ProcessEnv): Child {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, ...args], { env });
  let stdout = '';
  let stderr = '';
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    if (stdout.includes('ready\n')) markReady();
  });
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
  const done = new Promise<ChildResult>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').at(-1) ?? '';
      let result: Record<string, unknown> = {};
      try {
        result = JSON.parse(last) as Record<string, unknown>;
      } catch {
        // asserted by the caller through `code` and the output shown in its message
      }
      resolve({ code, stdout, stderr, result, wallMs: performance.now() - started });
    }),
  );
  return { ready: Promise.race([ready, done.then(() => {})]), done };
}

function explain(r: ChildResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function byName(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const span = spans.find((s) => s.name === name);
  assert.ok(span, `no span named ${name}; got ${spans.map((s) => s.name).join(', ')}`);
  return span;
}

describe('tracing across processes over NATS', () => {
  let nats: NatsServer;
  let receiver: OtlpReceiver;

  before(async () => {
    nats = await NatsServer.start();
    receiver = await OtlpReceiver.start();
  });
  after(async () => {
    await receiver?.close();
    await nats?.stop();
  });

  for (const protocol of ['http/json', 'http/protobuf'] as const) {
    it(`joins the sender's and the receiver's spans into one trace (${protocol})`, async () => {
      receiver.spans.length = 0;
      const subject = `sy.test.${protocol === 'http/json' ? 'json' : 'proto'}.generate`;
      const env = cleanEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      });
      const server = runFixture(['serve', nats.url, subject], env);
      await server.ready;
      const sent = await runFixture(['send', nats.url, subject], env).done;
      const served = await server.done;
      assert.equal(sent.code, 0, explain(sent));
      assert.equal(served.code, 0, explain(served));
      assert.equal(sent.result.reply, 'done');

      // Both processes flushed on shutdown, before they printed their result: all spans are in.
      const spans = await receiver.waitForSpans(3);
      assert.equal(
        receiver.contentTypes.at(-1),
        protocol === 'http/json' ? 'application/json' : 'application/x-protobuf',
      );
      const root = byName(spans, 'fixture request');
      const sendSpan = byName(spans, `send ${FIXTURE_SUBJECT_TEMPLATE}`);
      const processSpan = byName(spans, `process ${FIXTURE_SUBJECT_TEMPLATE}`);

      assert.equal(new Set(spans.map((s) => s.traceId)).size, 1, 'all spans share one trace id');
      assert.equal(root.traceId, sent.result.traceId);
      assert.equal(root.parentSpanId, '');
      assert.equal(sendSpan.parentSpanId, root.spanId);
      assert.equal(processSpan.parentSpanId, sendSpan.spanId, 'the receiver continues the sender');
      assert.equal(processSpan.spanId, served.result.spanId);

      assert.equal(sendSpan.kind, OTLP_KIND.client);
      assert.equal(processSpan.kind, OTLP_KIND.server);
      assert.equal(sendSpan.attributes[MESSAGING_ATTRS.system], 'nats');
      assert.equal(sendSpan.attributes[MESSAGING_ATTRS.destinationName], subject);
      assert.equal(sendSpan.attributes[MESSAGING_ATTRS.operationType], 'send');
      assert.equal(processSpan.attributes[MESSAGING_ATTRS.operationType], 'process');
      assert.equal(processSpan.attributes[MESSAGING_ATTRS.destinationTemplate], FIXTURE_SUBJECT_TEMPLATE);
      assert.equal(processSpan.attributes[MESSAGING_ATTRS.consumerGroupName], FIXTURE_QUEUE_GROUP);
      assert.equal(processSpan.attributes[MESSAGING_ATTRS.bodySize], 5);
      assert.equal(processSpan.attributes[GEN_AI_ATTRS.usageInputTokens], 5);
      assert.equal(processSpan.attributes[GEN_AI_ATTRS.usageOutputTokens], 7);
      assert.equal(root.attributes[GEN_AI_ATTRS.requestModel], 'tiny');

      assert.deepEqual(
        [root.resource['service.instance.id'], root.resource[SWITCHYARD_ATTRS.role]],
        ['bridge-t', 'bridge'],
      );
      assert.deepEqual(
        [processSpan.resource['service.instance.id'], processSpan.resource[SWITCHYARD_ATTRS.role]],
        ['replica-t', 'replica'],
      );
      assert.equal(processSpan.resource['service.name'], 'switchyard');

      // The log line written inside the receiver's span carries the request's trace id.
      const line = logLines(served.stderr).find((l) => l.msg === FIXTURE_LOG_MESSAGE);
      assert.ok(line, explain(served));
      assert.equal(line[LOG_TRACE_FIELDS.traceId], root.traceId);
      assert.equal(line[LOG_TRACE_FIELDS.spanId], processSpan.spanId);
      assert.equal(line.role, 'replica');
    });
  }
});

describe('tracing without a collector', () => {
  it('with no OTEL_* configured, exports nothing, opens no socket and shuts down at once', async () => {
    const r = await runFixture(['lone'], cleanEnv()).done;
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.result.active, true);
    assert.equal(r.result.exporter, 'none');
    assert.equal(r.result.url, null);
    assert.match(String(r.result.traceId), /^[0-9a-f]{32}$/, 'spans still get ids for log correlation');
    assert.notEqual(r.result.traceId, '0'.repeat(32));
    assert.equal(r.result.sockets, 0, 'no network I/O');
    // Nothing to flush: shutdown must not sit out its timeout (the fixture's default).
    assert.ok(
      Number(r.result.shutdownMs) < DEFAULT_TRACING_SHUTDOWN_TIMEOUT_MS,
      `shutdown took ${String(r.result.shutdownMs)} ms`,
    );
    assert.equal(logLines(r.stderr).filter((l) => Number(l.level) >= 40).length, 0, r.stderr);
  });

  it('with an unreachable collector, shutdown is bounded, logs the failure and does not crash', async () => {
    const port = await freePort(); // nothing listens on it
    const shutdownTimeoutMs = 1_000;
    const r = await runFixture(
      ['lone'],
      cleanEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        // The exporter retries a refused connection until this runs out; keep the child short-lived.
        OTEL_EXPORTER_OTLP_TIMEOUT: '1500',
        FIXTURE_SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
      }),
    ).done;
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.result.exporter, 'otlp');
    assert.equal(r.result.url, `http://127.0.0.1:${port}/v1/traces`);
    assert.ok(Number(r.result.sockets) > 0, 'the export was attempted (the socket probe works)');
    assert.ok(
      Number(r.result.shutdownMs) < shutdownTimeoutMs + 500,
      `shutdown took ${String(r.result.shutdownMs)} ms`,
    );
    const warnings = logLines(r.stderr).filter((l) => Number(l.level) >= 40);
    assert.ok(warnings.length > 0, `expected a logged export failure: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /unhandled|ECONNREFUSED\s+at /i);
  });
});
