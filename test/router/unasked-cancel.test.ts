/**
 * A `cancelled` that the router did not ask for is not success: a replica that ends an attempt
 * as cancelled (or answers a `cancelled` error) unasked dropped the work, and the router resumes
 * the request elsewhere. Real router and nats-server; the replicas are scripted fakes that speak
 * the protocol, so that they can misbehave on cue.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import { CancelledError } from '../../src/errors/errors.ts';
import { startRouter, type Router } from '../../src/router/router.ts';
import { waitFor } from '../helpers/cluster.ts';
import { request } from '../helpers/front-door.ts';
import { fakeReplica } from '../helpers/fake-replica.ts';
import { NatsServer } from '../helpers/nats-server.ts';

/** A fake replica: its first attempt of every request ends as `how`, later attempts complete. */
function cancellingReplica(nc: NatsConnection, id: string, how: () => 'end' | 'error'): () => void {
  return fakeReplica(nc, id, ({ meta, request, responder }) => {
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
    assert.deepEqual(request.resumeTokenIds, [5]);
    responder.chunk({ tokenIds: [6, 7], text: 'bc' });
    responder.end({ finishReason: 'length', usage: { promptTokens: 1, completionTokens: 2 } });
  });
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
      cancellingReplica(nc, 'fa', () => mode),
      cancellingReplica(nc, 'fb', () => mode),
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
