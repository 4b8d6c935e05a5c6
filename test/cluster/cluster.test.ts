/**
 * The cluster's routing and admission, for real: replica and router processes through the CLI,
 * a real nats-server, the bundled model.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { Svcm } from '@nats-io/services';
import { connectNats } from '../../src/cluster/connection.ts';
import { decodeReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import {
  ALL_REPLICA_HEARTBEATS,
  GENERATE_SUBJECT,
  replicaCancelSubject,
  replicaFaultSubject,
  replicaGenerateSubject,
  replicaHeartbeatSubject,
  routerCancelSubject,
  routerHeartbeatSubject,
} from '../../src/cluster/subjects.ts';
import { freePort } from '../../src/cli/nats-server.ts';
import { ActorProcess, killAll } from '../helpers/cluster.ts';
import { request, send } from '../helpers/front-door.ts';
import { NatsServer } from '../helpers/nats-server.ts';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const LONG = { model: 'tiny-gpt2', prompt: 'Load spreads', maxTokens: 200, temperature: 0, ignoreEos: true };

describe('routing and admission', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let router: ActorProcess;
  let a: ActorProcess;
  let b: ActorProcess;
  let routerMetrics: string;
  let replicaMetrics: string;

  before(async () => {
    server = await NatsServer.start();
    const [routerPort, replicaPort] = [await freePort(), await freePort()];
    routerMetrics = `http://127.0.0.1:${routerPort}/metrics`;
    replicaMetrics = `http://127.0.0.1:${replicaPort}/metrics`;
    [router, a, b] = await Promise.all([
      ActorProcess.start('router', 'rt', server.url, ['--metrics-port', String(routerPort)]),
      ActorProcess.start('replica', 'ra', server.url, [
        '--max-batch-size',
        '4',
        '--max-queue',
        '0',
        '--metrics-port',
        String(replicaPort),
      ]),
      ActorProcess.start('replica', 'rb', server.url, ['--max-batch-size', '4', '--max-queue', '0']),
    ]);
    nc = await connectNats({ servers: server.url });
  });

  after(async () => {
    await nc?.close();
    await killAll([router, a, b]);
    await server?.stop();
  });

  it('registers each replica as a NATS micro service ($SRV.PING/INFO/STATS)', async () => {
    const client = new Svcm(nc).client();
    const infos = [];
    for await (const info of await client.info('switchyard-replica')) infos.push(info);
    const ids = infos.map((i) => i.metadata?.replica).sort();
    assert.deepEqual(ids, ['ra', 'rb']);
    const pings = [];
    for await (const ping of await client.ping('switchyard-replica')) pings.push(ping);
    assert.equal(pings.length, 2);
  });

  it('serves Prometheus metrics on --metrics-port that move with traffic', async () => {
    const value = (text: string, series: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(series + ' '));
      assert.ok(line, `no ${series} in:\n${text}`);
      return Number(line.split(' ')[1]);
    };
    const accepted = 'switchyard_replica_requests_total{replica="ra",model="tiny-gpt2",version="1"}';
    const routed = 'switchyard_requests_total{model="tiny-gpt2",code="ok",router="rt"}';
    const before = value(await (await fetch(replicaMetrics)).text(), accepted);
    const routerBefore = await (await fetch(routerMetrics)).text();
    // A labelled series appears with its first request.
    const routedBefore = routerBefore.includes(`${routed} `) ? value(routerBefore, routed) : 0;
    // Two idle replicas: each request goes to either, so send until ra served one (40 all to
    // rb has odds of 1e-12), at least 4.
    let sent = 0;
    let after: string;
    do {
      await request(nc, { model: 'tiny-gpt2', prompt: `m ${sent}`, maxTokens: 2, temperature: 0 });
      sent++;
      after = await (await fetch(replicaMetrics)).text();
    } while (sent < 40 && (sent < 4 || value(after, accepted) === before));
    assert.ok(value(after, accepted) > before, `ra accepted none of ${sent} requests`);
    assert.match(after, /# TYPE switchyard_active_sequences gauge/);
    assert.match(
      after,
      /^switchyard_event_loop_delay_seconds\{replica="ra",model="tiny-gpt2",version="1"\} [0-9.e-]+$/m,
    );
    assert.match(
      after,
      /^switchyard_batch_size_count\{(?=[^}]*phase="decode")(?=[^}]*replica="ra")[^}]*\} [1-9]/m,
    );
    const routerText = await (await fetch(routerMetrics)).text();
    assert.equal(value(routerText, 'switchyard_replicas{state="alive",router="rt"}'), 2);
    assert.equal(value(routerText, routed) - routedBefore, sent, 'the router counts every request once');
    assert.ok(value(routerText, 'switchyard_generation_tokens_total{model="tiny-gpt2",router="rt"}') >= 4);
    assert.match(
      routerText,
      /^switchyard_time_to_first_token_seconds_count\{router="rt",model="tiny-gpt2"\} [1-9]/m,
    );
    assert.match(routerText, /^switchyard_event_loop_delay_seconds\{router="rt"\} [0-9.e-]+$/m);
  });

  it('spreads concurrent requests across replicas by load', async () => {
    const seen = new Map<string, number>();
    const sub = nc.subscribe(ALL_REPLICA_HEARTBEATS, {
      callback: (_err, msg) => {
        const hb = decodeReplicaHeartbeat(msg.data);
        seen.set(hb.id, Math.max(seen.get(hb.id) ?? 0, hb.activeSequences));
      },
    });
    await sleep(300);
    const sent = Array.from({ length: 6 }, () => send(nc, LONG));
    const results = await Promise.all(sent.map((s) => s.done));
    sub.unsubscribe();
    for (const r of results) assert.equal(r.error, undefined, r.error?.message);
    assert.ok(
      (seen.get('ra') ?? 0) >= 2 && (seen.get('rb') ?? 0) >= 2,
      `load was not spread: ${JSON.stringify([...seen])}`,
    );
  });

  it('answers busy at once when every replica is full', async () => {
    // 2 replicas × (batch 4 + queue 0) = 8 slots; the ninth and later requests are refused.
    const sent = Array.from({ length: 12 }, () => send(nc, LONG));
    const results = await Promise.all(sent.map((s) => s.done));
    const busy = results.filter((r) => r.error?.code === 'busy');
    const ok = results.filter((r) => r.end?.finishReason === 'length');
    assert.ok(busy.length >= 1, 'no request was refused with busy');
    assert.equal(busy.length + ok.length, results.length, 'a request ended otherwise than ok or busy');
    for (const r of busy) assert.equal(r.chunks.length, 0);
  });

  it('answers model_not_found for a model no replica ever served', async () => {
    const got = await request(nc, { model: 'no-such-model', prompt: 'x' });
    assert.equal(got.error?.code, 'model_not_found');
    const pinned = await request(nc, { model: 'tiny-gpt2', version: '999', prompt: 'x' });
    assert.equal(pinned.error?.code, 'model_not_found');
  });

  it('answers invalid_request for malformed messages on every subject, and crashes nothing', async () => {
    const garbage: Array<string | Uint8Array> = [
      'not json',
      '{"model": 5}',
      '[]',
      new Uint8Array([0xff, 0xfe, 0x7b]), // not UTF-8
      '{"model":"tiny-gpt2","prompt":"x","max_tokens":-1}',
    ];
    for (const body of garbage) {
      for (const subject of [GENERATE_SUBJECT, replicaGenerateSubject('ra')]) {
        const reply = await nc.request(subject, body, { timeout: 5_000 });
        assert.equal(reply.headers?.get('Sy-Error-Code'), 'invalid_request', `${subject} <- ${String(body)}`);
      }
      // Fire-and-forget subjects: nothing to answer, nothing may crash.
      for (const subject of [
        replicaCancelSubject('ra'),
        routerCancelSubject('rt'),
        replicaHeartbeatSubject('ra'),
        routerHeartbeatSubject('rt'),
        replicaFaultSubject('ra'),
      ]) {
        nc.publish(subject, body);
      }
    }
    const bad = await nc.request(GENERATE_SUBJECT, '{"model":"tiny-gpt2","prompt":"x","top_p":0}', {
      timeout: 5_000,
    });
    assert.match(bad.headers?.get('Sy-Error-Message') ?? '', /top_p must be a number in \(0, 1\], got 0/);
    await sleep(500);
    const got = await request(nc, {
      model: 'tiny-gpt2',
      prompt: 'still alive',
      maxTokens: 4,
      temperature: 0,
    });
    assert.equal(got.end?.finishReason, 'length', `cluster broken after garbage: ${got.error?.message}`);
    for (const actor of [router, a, b]) assert.equal(actor.child.exitCode, null, `${actor.id} crashed`);
  });

  it('a replica under full load misses no heartbeat', async () => {
    const beats: number[] = [];
    const sub = nc.subscribe(replicaHeartbeatSubject('ra'), {
      callback: () => {
        beats.push(Date.now());
      },
    });
    const until = Date.now() + 4_000;
    const running: Promise<unknown>[] = [];
    while (Date.now() < until) {
      running.push(send(nc, LONG).done);
      await sleep(50);
    }
    await Promise.all(running);
    sub.unsubscribe();
    const gaps = beats.slice(1).map((t, i) => t - beats[i]!);
    // Routers declare a replica dead after 3 missed 200 ms beats; no gap may come near that.
    assert.ok(beats.length >= 15, `only ${beats.length} heartbeats in 4 s`);
    assert.ok(Math.max(...gaps) < 600, `a heartbeat gap of ${Math.max(...gaps)} ms under load`);
  });

  it('avoids a dead replica and answers unavailable when none is live', async () => {
    await b.kill();
    await sleep(1_500);
    for (let i = 0; i < 4; i++) {
      const got = await request(nc, {
        model: 'tiny-gpt2',
        prompt: `after death ${i}`,
        maxTokens: 4,
        temperature: 0,
      });
      assert.equal(got.end?.attempts, 1, `request ${i} was sent to the dead replica first`);
    }
    await a.kill();
    await sleep(1_500);
    const none = await request(nc, { model: 'tiny-gpt2', prompt: 'anyone?', maxTokens: 4 });
    assert.equal(none.error?.code, 'unavailable');
  });
});
