/**
 * The cluster's routing and admission, for real: replica and router processes through the CLI,
 * a real nats-server, the bundled model.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
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
import { request, send, type Recorded } from '../helpers/front-door.ts';
import { waitForAliveReplicas } from '../helpers/metrics.ts';
import { TINY_MODEL } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const MANIFEST = JSON.parse(readFileSync(join(TINY_MODEL, 'manifest.json'), 'utf8')) as {
  eosTokenIds: number[];
  vocabSize: number;
};
/** The protocol's prompt limit in characters (docs/protocol.md, generate request). */
const PROMPT_LIMIT = 262_144;

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
    const accepted = 'switchyard_replica_requests_total{replica="ra",model="tiny-gpt2"}';
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
    assert.match(after, /^switchyard_event_loop_delay_seconds\{replica="ra",model="tiny-gpt2"\} [0-9.e-]+$/m);
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
    await nc.flush(); // the subscription is in place before the load starts
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
    // What every replica must still serve, exactly, after the garbage below.
    const wellFormed: GenerateRequest = {
      model: 'tiny-gpt2',
      prompt: 'still alive',
      maxTokens: 8,
      temperature: 0,
    };
    const reference = await request(nc, wellFormed);
    assert.equal(reference.end?.finishReason, 'length', `reference failed: ${reference.error?.message}`);
    assert.equal(reference.tokenIds.length, 8);
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

    // Well-formed but hostile: each is answered (never with silence) on the front door and on
    // each replica's own subject, and what it may do to an engine it does only to itself.
    // The first chunks as a client would hold them: their text is a stop sequence they complete.
    const delivered: number[] = [];
    let stopText = '';
    for (const c of reference.chunks) {
      delivered.push(...c.tokenIds);
      stopText += c.text;
      if (stopText.trim().length >= 2) break;
    }
    assert.ok(delivered.length < reference.tokenIds.length && stopText.length > 0, 'no usable stop text');
    const [eos] = MANIFEST.eosTokenIds;
    assert.ok(eos !== undefined, 'the bundled model names an EOS id');
    const endsAtOnce = (why: string) => (got: Recorded) => {
      assert.equal(got.error, undefined, `${why}: ${got.error?.code} ${got.error?.message}`);
      assert.equal(got.end?.finishReason, 'stop', why);
      assert.equal(got.chunks.length, 0, `${why}: chunks were sent`);
      assert.equal(got.end?.usage.completionTokens, 0, why);
    };
    const invalid = (why: string, message: RegExp) => (got: Recorded) => {
      assert.equal(
        got.error?.code,
        'invalid_request',
        `${why}: got ${got.error?.code ?? got.end?.finishReason}`,
      );
      assert.match(got.error.message, message, why);
    };
    const hostile: Array<[string, GenerateRequest, (got: Recorded) => void]> = [
      [
        'resumed tokens that already complete a stop sequence',
        { ...wellFormed, resumeTokenIds: delivered, stop: [stopText] },
        endsAtOnce('resume completing a stop sequence'),
      ],
      [
        'resumed tokens that contain the EOS id',
        { ...wellFormed, resumeTokenIds: [...delivered.slice(0, 2), eos, ...delivered.slice(2)] },
        endsAtOnce('resume containing EOS'),
      ],
      [
        'an out-of-vocabulary prompt token id',
        { model: 'tiny-gpt2', promptTokenIds: [1, MANIFEST.vocabSize], maxTokens: 2 },
        invalid('out-of-vocabulary prompt id', new RegExp(String(MANIFEST.vocabSize))),
      ],
      [
        'an out-of-vocabulary resumed token id',
        { ...wellFormed, resumeTokenIds: [delivered[0]!, 2_000_000_000] },
        invalid('out-of-vocabulary resumed id', /2000000000/),
      ],
      [
        'max_tokens 0 without resumed tokens',
        { ...wellFormed, maxTokens: 0 },
        invalid('max_tokens 0 without resume', /max_tokens/),
      ],
      [
        'a prompt at the size limit',
        { model: 'tiny-gpt2', prompt: 'ab '.repeat(PROMPT_LIMIT / 3) + 'a', maxTokens: 1, temperature: 0 },
        (got) => {
          // Far past the context: a typed error (or, with a larger model, a completion).
          if (got.error) assert.equal(got.error.code, 'invalid_request', got.error.message);
          else assert.equal(got.end?.finishReason, 'length');
        },
      ],
    ];
    assert.equal((hostile.at(-1)![1].prompt ?? '').length, PROMPT_LIMIT);
    for (const [what, req, check] of hostile) {
      for (const subject of [GENERATE_SUBJECT, replicaGenerateSubject('ra'), replicaGenerateSubject('rb')]) {
        const got = await request(nc, req, 30_000, subject);
        assert.ok(got.end || got.error, `${what} on ${subject}: no answer`);
        check(got);
      }
    }

    // Every replica still serves, and serves the same text: a hung or corrupted engine fails here.
    for (const subject of [replicaGenerateSubject('ra'), replicaGenerateSubject('rb'), GENERATE_SUBJECT]) {
      const got = await request(nc, wellFormed, 30_000, subject);
      assert.equal(got.error, undefined, `${subject} broken after garbage: ${got.error?.message}`);
      assert.equal(got.end?.finishReason, 'length', subject);
      assert.deepEqual(got.tokenIds, reference.tokenIds, `${subject}: tokens differ after garbage`);
      assert.equal(got.text, reference.text, `${subject}: text differs after garbage`);
    }
    for (const actor of [router, a, b]) assert.equal(actor.child.exitCode, null, `${actor.id} crashed`);
  });

  it('a replica under full load misses no heartbeat', async () => {
    // Timed on the sender's clock (sent_at): the receiving test process is itself loaded, and
    // its receipt times say more about its own event loop than about the replica's.
    const beats: Array<{ sentAt: number; intervalMs: number; active: number; progress: number }> = [];
    const sub = nc.subscribe(replicaHeartbeatSubject('ra'), {
      callback: (_err, msg) => {
        const hb = decodeReplicaHeartbeat(msg.data);
        beats.push({
          sentAt: hb.sentAt,
          intervalMs: hb.intervalMs,
          active: hb.activeSequences,
          progress: hb.progress,
        });
      },
    });
    await nc.flush();
    const BEATS = 16;
    // Six closed-loop clients keep both replicas (4 slots each) busy until ra sent BEATS beats.
    const outcomes: string[] = [];
    const worker = async (): Promise<void> => {
      while (beats.length < BEATS) {
        const got = await send(nc, LONG).done;
        outcomes.push(got.error?.code ?? got.end?.finishReason ?? 'none');
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    sub.unsubscribe();
    assert.deepEqual(
      outcomes.filter((o) => o !== 'length' && o !== 'busy'),
      [],
      'requests under load ended otherwise than ok or busy',
    );
    const loaded = beats.filter((hb) => hb.active > 0);
    assert.ok(loaded.length >= BEATS / 2, `ra was busy in only ${loaded.length} of ${beats.length} beats`);
    assert.ok(beats.at(-1)!.progress > beats[0]!.progress, 'the engine made no progress');
    // Routers declare a replica dead after 3 missed beats; no gap may come near that.
    const gaps = beats
      .slice(1)
      .map((hb, i) => ({ gap: hb.sentAt - beats[i]!.sentAt, limit: 3 * hb.intervalMs }));
    const worst = gaps.reduce((w, g) => (g.gap / g.limit > w.gap / w.limit ? g : w));
    assert.ok(
      worst.gap < worst.limit,
      `a heartbeat gap of ${worst.gap} ms under load (limit ${worst.limit})`,
    );
  });

  it('avoids a dead replica and answers unavailable when none is live', async () => {
    await b.kill();
    await waitForAliveReplicas(routerMetrics, 'rt', 1);
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
    await waitForAliveReplicas(routerMetrics, 'rt', 0);
    const none = await request(nc, { model: 'tiny-gpt2', prompt: 'anyone?', maxTokens: 4 });
    assert.equal(none.error?.code, 'unavailable');
  });
});
