/**
 * One trace across the real cluster: bridge, router and replica processes started through the
 * CLI, configured only by OTEL_* environment, export to an OTLP receiver on loopback. A streamed
 * HTTP request that arrives with its own `traceparent` fails over (its replica is SIGKILLed
 * mid-stream); its spans form one trace bridge → client send → route → one span per attempt →
 * replica → engine phases, with the right parents, a failover event naming the dead replica,
 * and the router's log line about the failover carries the request's trace id. Each process
 * names its service by role, in the `switchyard` namespace.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { SwitchyardClient } from '../../src/client/client.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { collectorSubject } from '../../src/cluster/subjects.ts';
import {
  GEN_AI_ATTRS,
  SPAN_NAMES,
  SWITCHYARD_ATTRS,
  SWITCHYARD_EVENTS,
} from '../../src/telemetry/attributes.ts';
import { LOG_TRACE_FIELDS } from '../../src/telemetry/log-context.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { envWithoutOtel } from '../helpers/env.ts';
import { freePort, NatsServer } from '../helpers/nats-server.ts';
import { OTLP_KIND, OtlpReceiver, type ReceivedSpan } from './otlp-receiver.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN_ID = '00f067aa0ba902b7';
const TOKENS = 120;
const PROMPT = 'The yard at night';
/** Slows every step so the stream is still running when its replica is killed. */
const STEP_DELAY_MS = 15;

/** The environment of an actor that exports its spans to `endpoint` as OTLP/JSON, quickly. */
function otelEnv(endpoint: string): Record<string, string> {
  return envWithoutOtel({
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '100',
  });
}

async function activeSequences(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('switchyard_active_sequences{'));
  return Number(line?.split(' ').at(-1) ?? 0);
}

/** Reads an SSE completion stream; calls `onChunk` after each text event; resolves with the text. */
async function readSse(res: Response, onChunk: (count: number) => Promise<void>): Promise<string> {
  assert.equal(res.status, 200);
  const decoder = new TextDecoder();
  let buffered = '';
  let text = '';
  let events = 0;
  let done = false;
  for await (const part of res.body as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(part, { stream: true });
    let cut: number;
    while ((cut = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(0, cut);
      buffered = buffered.slice(cut + 2);
      const data = event.replace(/^data: /, '');
      if (data === '[DONE]') {
        done = true;
        continue;
      }
      const parsed = JSON.parse(data) as { choices?: { text?: string }[]; error?: unknown };
      assert.equal(parsed.error, undefined, `error event: ${data}`);
      text += parsed.choices?.[0]?.text ?? '';
      await onChunk(++events);
    }
  }
  assert.ok(done, 'the stream ended with [DONE]');
  return text;
}

function one(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter((s) => s.name === name);
  assert.equal(found.length, 1, `want one span ${name}; got ${spans.map((s) => s.name).join(', ')}`);
  return found[0] as ReceivedSpan;
}

describe('one trace across bridge, router and replica processes', () => {
  let nats: NatsServer;
  let receiver: OtlpReceiver;
  let nc: NatsConnection;
  const replicas = new Map<string, { actor: ActorProcess; metricsPort: number }>();
  let router: ActorProcess;
  let bridge: ActorProcess;
  let collector: ActorProcess;

  before(async () => {
    nats = await NatsServer.start({ jetstream: true });
    receiver = await OtlpReceiver.start();
    const env = otelEnv(receiver.endpoint);
    collector = await ActorProcess.start('collector', 'tcol', nats.url, [], env);
    const ports = [await freePort(), await freePort()];
    const started = await Promise.all(
      ['ta', 'tb'].map((id, i) =>
        ActorProcess.start('replica', id, nats.url, ['--metrics-port', String(ports[i])], env),
      ),
    );
    started.forEach((actor, i) => replicas.set(actor.id, { actor, metricsPort: ports[i] as number }));
    router = await ActorProcess.start('router', 'trt', nats.url, [], env);
    bridge = await ActorProcess.start('bridge', 'tbr', nats.url, [], env);
    nc = await connectNats({ servers: nats.url });
    for (const id of replicas.keys()) await injectFault(nc, id, { step_delay_ms: STEP_DELAY_MS });
    await waitFor('the bridge to see a live replica', async () => (await fetch(`${bridge.url}/readyz`)).ok);
  });

  after(async () => {
    await nc?.close();
    await killAll([bridge, router, collector, ...[...replicas.values()].map((r) => r.actor)]);
    await receiver?.close();
    await nats?.stop();
  });

  it('joins every hop of a failed-over request into one trace with correct parents', async () => {
    let killed: string | undefined;
    const res = await fetch(`${bridge.url}/v1/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        traceparent: `00-${TRACE_ID}-${CALLER_SPAN_ID}-01`,
      },
      body: JSON.stringify({
        model: 'tiny-gpt2',
        prompt: PROMPT,
        max_tokens: TOKENS,
        temperature: 0,
        stream: true,
        ignore_eos: true,
      }),
    });
    const text = await readSse(res, async (count) => {
      if (count !== 5 || killed !== undefined) return;
      for (const [id, r] of replicas) {
        if ((await activeSequences(r.metricsPort)) > 0) {
          killed = id;
          await r.actor.kill();
          return;
        }
      }
    });
    assert.ok(killed, 'found the replica serving the stream and killed it');
    assert.ok(text.length > 0);
    const survivor = [...replicas.keys()].find((id) => id !== killed) as string;

    // The collector merged the request's completion event before it stops.
    await waitFor('the completion recorded', async () => {
      const stats = (await nc.request(collectorSubject('stats'), '{}', { timeout: 5_000 })).json<{
        records: number;
      }>();
      return stats.records >= 1;
    });
    // A drain ends each process's tracing, which exports what is left.
    const survivors = [bridge, router, collector, (replicas.get(survivor) as { actor: ActorProcess }).actor];
    assert.deepEqual(await Promise.all(survivors.map((a) => a.terminate())), [0, 0, 0, 0]);
    const spans = receiver.spans.filter((s) => s.traceId === TRACE_ID);
    const role = (s: ReceivedSpan): unknown => s.resource[SWITCHYARD_ATTRS.role];
    const service = (s: ReceivedSpan): unknown[] => [
      s.resource['service.name'],
      s.resource['service.namespace'],
    ];

    const http = one(spans, 'POST /v1/completions');
    assert.equal(http.kind, OTLP_KIND.server);
    assert.equal(role(http), 'bridge');
    assert.deepEqual(service(http), ['switchyard-bridge', 'switchyard']);
    assert.equal(http.parentSpanId, CALLER_SPAN_ID, "the caller's traceparent is honoured");
    assert.equal(http.attributes['http.response.status_code'], 200);
    assert.equal(http.attributes[GEN_AI_ATTRS.operationName], 'text_completion');
    assert.equal(http.attributes[GEN_AI_ATTRS.requestModel], 'tiny-gpt2');

    // The collector's work on the request's completion event joins the request's trace.
    const merge = one(spans, 'collector merge completion');
    assert.deepEqual(service(merge), ['switchyard-collector', 'switchyard']);
    assert.equal(merge.kind, OTLP_KIND.consumer);
    assert.equal(merge.parentSpanId, one(spans, SPAN_NAMES.route).spanId, 'a child of the route span');

    const send = one(spans, 'send sy.v1.generate');
    assert.equal(send.kind, OTLP_KIND.client);
    assert.equal(send.parentSpanId, http.spanId);
    assert.equal(send.attributes['messaging.system'], 'nats');

    const route = one(spans, SPAN_NAMES.route);
    assert.equal(role(route), 'router');
    assert.deepEqual(service(route), ['switchyard-router', 'switchyard']);
    assert.equal(route.kind, OTLP_KIND.server);
    assert.equal(route.parentSpanId, send.spanId);
    assert.equal(route.attributes[SWITCHYARD_ATTRS.attempt], 2);
    const failover = route.eventDetails.find((e) => e.name === SWITCHYARD_EVENTS.failover);
    assert.ok(failover, `route events: ${route.events.join(', ')}`);
    assert.equal(failover.attributes[SWITCHYARD_ATTRS.replicaId], killed, 'the event names the dead replica');

    const attempts = spans
      .filter((s) => s.name === 'send sy.v1.replica.{id}.generate')
      .sort(
        (a, b) =>
          Number(a.attributes[SWITCHYARD_ATTRS.attempt]) - Number(b.attributes[SWITCHYARD_ATTRS.attempt]),
      );
    assert.equal(attempts.length, 2);
    for (const attempt of attempts) assert.equal(attempt.parentSpanId, route.spanId);
    assert.equal(attempts[0]?.attributes[SWITCHYARD_ATTRS.replicaId], killed);
    assert.equal(attempts[1]?.attributes[SWITCHYARD_ATTRS.replicaId], survivor);

    // The killed replica's spans died with it; the survivor's continue the second attempt.
    const served = one(spans, 'process sy.v1.replica.{id}.generate');
    assert.equal(served.resource['service.instance.id'], survivor);
    assert.deepEqual(service(served), ['switchyard-replica', 'switchyard']);
    assert.equal(served.parentSpanId, attempts[1]?.spanId);
    assert.ok(Number(served.attributes[SWITCHYARD_ATTRS.resumedTokens]) > 0, 'the attempt resumed tokens');
    assert.ok(Number(served.attributes[GEN_AI_ATTRS.usageOutputTokens]) > 0);
    // (The killed replica may have exported its first attempt's tokenize span before it died.)
    const children = spans.filter((s) => s.parentSpanId === served.spanId).map((s) => s.name);
    assert.deepEqual(
      children.sort(),
      [SPAN_NAMES.decode, SPAN_NAMES.prefill, SPAN_NAMES.queueWait, SPAN_NAMES.tokenize],
      'the engine phases are children of the replica span',
    );

    const lines = router.log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const logged = lines.find((l) => l.msg === 'attempt failed; resuming elsewhere');
    assert.ok(logged, `router log:\n${router.log}`);
    assert.equal(logged[LOG_TRACE_FIELDS.traceId], TRACE_ID);
    assert.equal(logged[LOG_TRACE_FIELDS.spanId], route.spanId);
    for (const actor of [bridge, router, ...[...replicas.values()].map((r) => r.actor)]) {
      assert.ok(!actor.log.includes(PROMPT), `${actor.role} ${actor.id} logged the prompt`);
    }
  });
});

describe('--log-prompts', () => {
  let nats: NatsServer;
  let actors: ActorProcess[] = [];

  before(async () => {
    nats = await NatsServer.start();
    actors = [
      await ActorProcess.start('replica', 'lp', nats.url, ['--log-prompts', '--log-level', 'info']),
      await ActorProcess.start('router', 'lprt', nats.url),
    ];
  });
  after(async () => {
    await killAll(actors);
    await nats?.stop();
  });

  it("puts the prompt and the generated text on the replica's 'request done' line, with the trace id", async () => {
    const client = await SwitchyardClient.connect({ nats: { servers: nats.url } });
    try {
      const result = await client.generate(
        { model: 'tiny-gpt2', prompt: PROMPT, maxTokens: 6, temperature: 0 },
        { traceparent: `00-${TRACE_ID}-${CALLER_SPAN_ID}-01` },
      );
      const replica = actors[0] as ActorProcess;
      let line: Record<string, unknown> | undefined;
      await waitFor('the request done line', () => {
        line = replica.log
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => l.msg === 'request done');
        return line !== undefined;
      });
      assert.equal(line?.prompt, PROMPT);
      assert.equal(line?.text, result.text);
      assert.equal(
        line?.[LOG_TRACE_FIELDS.traceId],
        TRACE_ID,
        "the caller's trace continues through a client without tracing of its own",
      );
    } finally {
      await client.close();
    }
  });
});
