/**
 * A child process for tracing tests, configured only by its environment like an actor is:
 *
 *   serve <natsUrl> <subject>  answer one request, in a SERVER span that continues the caller's trace
 *   send  <natsUrl> <subject>  make a root span and send one request from a CLIENT span under it
 *   lone                       init, one span, shutdown; report sockets opened and shutdown time
 *
 * Prints `ready` when serving, and one JSON line with what the test checks as its last line.
 * Logs (JSON, pino) go to stderr.
 */
import dc from 'node:diagnostics_channel';
import { pathToFileURL } from 'node:url';
import { ROOT_CONTEXT, context, trace } from '@opentelemetry/api';
import { headers } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { GEN_AI_ATTRS, SWITCHYARD_ATTRS } from '../../src/telemetry/attributes.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import {
  endSpan,
  setTokenUsage,
  startReceiveSpan,
  startSendSpan,
  tracer,
} from '../../src/telemetry/propagation.ts';
import { DEFAULT_TRACING_SHUTDOWN_TIMEOUT_MS } from '../../src/telemetry/tracing-options.ts';
import { initTracing } from '../../src/telemetry/tracing.ts';

/** Subject template the spans are named by. */
export const FIXTURE_SUBJECT_TEMPLATE = 'sy.test.{id}.generate';
/** Queue group the server subscribes in. */
export const FIXTURE_QUEUE_GROUP = 'sy-test';
/** Message of the log line logged inside the server span. */
export const FIXTURE_LOG_MESSAGE = 'handling request';

/** Client sockets and HTTP requests this process opened (diagnostics channels see them all). */
let sockets = 0;

function report(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function serve(natsUrl: string, subject: string): Promise<void> {
  const log = createLogger({ role: 'replica', id: 'replica-t' });
  const tracing = initTracing({
    serviceName: 'switchyard',
    actorId: 'replica-t',
    role: 'replica',
    logger: log,
  });
  const nc = await connect({ servers: natsUrl });
  const sub = nc.subscribe(subject, { queue: FIXTURE_QUEUE_GROUP, max: 1 });
  await nc.flush();
  process.stdout.write('ready\n');
  for await (const msg of sub) {
    const { span, context: ctx } = startReceiveSpan(msg.headers, {
      subject: msg.subject,
      subjectTemplate: FIXTURE_SUBJECT_TEMPLATE,
      queueGroup: FIXTURE_QUEUE_GROUP,
      bodySize: msg.data.length,
    });
    context.with(ctx, () => log.info({ subject: msg.subject }, FIXTURE_LOG_MESSAGE));
    setTokenUsage(span, { inputTokens: 5, outputTokens: 7 });
    msg.respond('done');
    endSpan(span);
    const sc = span.spanContext();
    await nc.drain();
    await tracing.shutdown();
    report({ traceId: sc.traceId, spanId: sc.spanId });
  }
}

async function send(natsUrl: string, subject: string): Promise<void> {
  const log = createLogger({ role: 'bridge', id: 'bridge-t' });
  const tracing = initTracing({
    serviceName: 'switchyard',
    actorId: 'bridge-t',
    role: 'bridge',
    logger: log,
  });
  const nc = await connect({ servers: natsUrl });
  const root = tracer().startSpan('fixture request', {
    attributes: { [GEN_AI_ATTRS.requestModel]: 'tiny', [SWITCHYARD_ATTRS.requestId]: 'req-1' },
  });
  const h = headers();
  const { span } = startSendSpan(
    h,
    { subject, subjectTemplate: FIXTURE_SUBJECT_TEMPLATE },
    trace.setSpan(ROOT_CONTEXT, root),
  );
  const reply = await nc.request(subject, 'hello', { headers: h, timeout: 5_000 });
  endSpan(span);
  root.end();
  await nc.close();
  await tracing.shutdown();
  report({
    traceId: root.spanContext().traceId,
    rootSpanId: root.spanContext().spanId,
    sendSpanId: span.spanContext().spanId,
    reply: reply.string(),
  });
}

async function lone(): Promise<void> {
  const log = createLogger({ role: 'router', id: 'router-t' });
  const tracing = initTracing({
    serviceName: 'switchyard',
    actorId: 'router-t',
    role: 'router',
    logger: log,
    shutdownTimeoutMs: Number(process.env.FIXTURE_SHUTDOWN_TIMEOUT_MS ?? DEFAULT_TRACING_SHUTDOWN_TIMEOUT_MS),
  });
  const span = tracer().startSpan('lone');
  span.end();
  const started = performance.now();
  await tracing.shutdown();
  report({
    active: tracing.active,
    exporter: tracing.exporter,
    url: tracing.url ?? null,
    traceId: span.spanContext().traceId,
    sockets,
    shutdownMs: performance.now() - started,
  });
}

function main(): void {
  for (const channel of ['net.client.socket', 'http.client.request.start', 'undici:request:create']) {
    dc.subscribe(channel, () => sockets++);
  }
  const [mode, natsUrl = '', subject = ''] = process.argv.slice(2);
  const run = mode === 'serve' ? serve(natsUrl, subject) : mode === 'send' ? send(natsUrl, subject) : lone();
  run.catch((err: unknown) => {
    process.stderr.write(`fixture ${mode} failed: ${String(err)}\n`);
    process.exitCode = 1;
  });
}

// Tests import the constants above; only a process started on this file runs.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
