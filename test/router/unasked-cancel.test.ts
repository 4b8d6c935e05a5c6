/**
 * A `cancelled` that the router did not ask for is not success: a replica that ends an attempt
 * as cancelled (or answers a `cancelled` error) unasked dropped the work, and the router resumes
 * the request elsewhere. Real router and nats-server; the replicas are scripted fakes that speak
 * the protocol, so that they can misbehave on cue.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import { readRequestMeta } from '../../src/cluster/headers.ts';
import { decodeGenerateRequest } from '../../src/cluster/messages/generate.ts';
import { encodeReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { StreamResponder } from '../../src/cluster/stream-responder.ts';
import { replicaGenerateSubject, replicaHeartbeatSubject } from '../../src/cluster/subjects.ts';
import { CancelledError } from '../../src/errors/errors.ts';
import { startRouter, type Router } from '../../src/router/router.ts';
import { waitFor } from '../helpers/cluster.ts';
import { request } from '../helpers/front-door.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const BEAT_MS = 100;

/** A fake replica: its first attempt of every request ends as `how`, later attempts complete. */
function fakeReplica(nc: NatsConnection, id: string, how: () => 'end' | 'error'): () => void {
  const beat = (): void =>
    nc.publish(
      replicaHeartbeatSubject(id),
      encodeReplicaHeartbeat({
        id,
        model: 'fake',
        modelVersion: '1',
        device: 'cpu',
        state: 'ready',
        queueDepth: 0,
        activeSequences: 0,
        maxBatchSize: 8,
        maxQueue: 8,
        freeTokenBudget: 4_096,
        tokenBudget: 4_096,
        progress: 0,
        sentAt: Date.now(),
        intervalMs: BEAT_MS,
      }),
    );
  beat();
  const timer = setInterval(beat, BEAT_MS);
  const sub: Subscription = nc.subscribe(replicaGenerateSubject(id), {
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      const meta = readRequestMeta(msg.headers);
      const req = decodeGenerateRequest(msg.data);
      const responder = new StreamResponder(nc, msg.reply, {
        requestId: meta.requestId,
        attempt: meta.attempt ?? 1,
      });
      responder.ack({ by: id });
      if ((meta.attempt ?? 1) === 1) {
        responder.chunk({ tokenIds: [5], text: 'a', maxTokens: 3 });
        if (how() === 'end') {
          responder.end({ finishReason: 'cancelled', usage: { promptTokens: 1, completionTokens: 1 } });
        } else {
          responder.error(new CancelledError('dropped'));
        }
        return;
      }
      assert.deepEqual(req.resumeTokenIds, [5]);
      responder.chunk({ tokenIds: [6, 7], text: 'bc' });
      responder.end({ finishReason: 'length', usage: { promptTokens: 1, completionTokens: 2 } });
    },
  });
  return () => {
    clearInterval(timer);
    sub.unsubscribe();
  };
}

describe('a replica that cancels an attempt unasked', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let router: Router;
  let mode: 'end' | 'error' = 'end';
  const stops: Array<() => void> = [];

  before(async () => {
    server = await NatsServer.start();
    nc = await connectNats({ servers: server.url });
    stops.push(
      fakeReplica(nc, 'fa', () => mode),
      fakeReplica(nc, 'fb', () => mode),
    );
    router = await startRouter({ id: 'rt', nats: { servers: server.url } });
  });

  after(async () => {
    for (const stop of stops) stop();
    await router?.stop();
    await nc?.close();
    await server?.stop();
  });

  for (const how of ['end', 'error'] as const) {
    it(`resumes elsewhere after a cancelled ${how} it did not ask for`, async () => {
      mode = how;
      let got = await request(nc, { model: 'fake', prompt: 'p', temperature: 0 });
      // Until the router has heard both fakes, the only replica may be tried twice: resend then.
      await waitFor('both fakes known', async () => {
        if (got.end?.finishReason === 'length') return true;
        got = await request(nc, { model: 'fake', prompt: 'p', temperature: 0 });
        return got.end?.finishReason === 'length';
      });
      assert.equal(got.error, undefined);
      assert.equal(got.end?.finishReason, 'length', 'the cancelled attempt must not end the request');
      assert.deepEqual(got.tokenIds, [5, 6, 7]);
      assert.equal(got.end?.attempts, 2);
      assert.equal(got.chunks[0]?.maxTokens, 3, 'the router passes the settled max_tokens on');
    });
  }
});
