/**
 * Peers are who they say (DESIGN.md invariant 9), for real: a replica process, a real
 * nats-server, the bundled model. Two routers that both hold one request id (a client resent it
 * through a second router while the first still lives) each own their own attempt on the
 * replica: a cancel stops only the work of the router it names.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { Engine } from '../../src/engine/engine.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { cancelOnReplica, referenceRun, RouterBeats, sendToReplica } from '../helpers/hardening.ts';
import { TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const TOKENS = 120;
const LONG: GenerateRequest = {
  model: 'tiny-gpt2',
  prompt: 'Two routers, one request',
  maxTokens: TOKENS,
  temperature: 0,
  ignoreEos: true,
};

describe('two live routers on one request id', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let engine: Engine;
  let replica: ActorProcess;
  let beats: RouterBeats;

  before(async () => {
    server = await NatsServer.start();
    [replica, engine] = await Promise.all([
      ActorProcess.start('replica', 'rp', server.url),
      Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS }),
    ]);
    nc = await connectNats({ servers: server.url });
    // Both routers beat, so the replica's orphan watch leaves their work alone.
    beats = new RouterBeats(nc, ['router-a', 'router-b']);
  });

  after(async () => {
    beats?.stop();
    await nc?.close();
    await engine?.stop();
    await killAll([replica]);
    await server?.stop();
  });

  it("each router's attempt is its own: a cancel stops only the work of the origin it names", async () => {
    const ref = await referenceRun(engine, LONG);
    await injectFault(nc, 'rp', { step_delay_ms: 20 }); // 120 steps: long enough to cancel mid-stream
    const requestId = 'twice-sent';
    const a = sendToReplica(nc, 'rp', LONG, { requestId, origin: 'router-a', attempt: 1 });
    const b = sendToReplica(nc, 'rp', LONG, { requestId, origin: 'router-b', attempt: 1 });
    const ended = (s: typeof a): boolean => s.record.end !== undefined || s.record.error !== undefined;
    await waitFor(
      'both attempts to stream',
      () => ended(a) || ended(b) || (a.record.chunks.length >= 2 && b.record.chunks.length >= 2),
    );
    assert.ok(!ended(a), `the second router's attempt ended the first's: ${a.record.error?.message}`);

    // Neither a cancel without an origin nor one for another attempt of router-b touches anything.
    await cancelOnReplica(nc, 'rp', { requestId, reason: 'no origin' });
    await cancelOnReplica(nc, 'rp', { requestId, origin: 'router-b', attempt: 2, reason: 'other attempt' });
    const [seenA, seenB] = [a.record.chunks.length, b.record.chunks.length];
    await waitFor(
      'both attempts to stream on after those cancels',
      () =>
        ended(a) || ended(b) || (a.record.chunks.length > seenA + 1 && b.record.chunks.length > seenB + 1),
    );
    assert.ok(!ended(a) && !ended(b), 'a cancel that named no owner (or another attempt) stopped work');

    await cancelOnReplica(nc, 'rp', { requestId, origin: 'router-a', reason: 'client gone' });
    const [gotA, gotB] = await Promise.all([a.done, b.done]);
    assert.equal(gotA.error, undefined, `router-a's attempt failed: ${gotA.error?.message}`);
    assert.equal(gotA.end?.finishReason, 'cancelled', "router-a's attempt was not cancelled");
    assert.ok(gotA.tokenIds.length < TOKENS, 'the cancel came too late to prove anything');
    assert.deepEqual(gotA.tokenIds, ref.tokenIds.slice(0, gotA.tokenIds.length), 'router-a got other tokens');
    assert.equal(gotB.error, undefined, `router-b's attempt failed: ${gotB.error?.message}`);
    assert.equal(gotB.end?.finishReason, 'length');
    assert.deepEqual(gotB.tokenIds, ref.tokenIds, "router-b's tokens differ from the reference");
    assert.equal(gotB.text, ref.text, "router-b's text differs from the reference");
    assert.equal(replica.child.exitCode, null, 'the replica exited');
  });
  it('two requests with one id and attempt through one router (two requesters chose the id) are two works', async () => {
    const ref = await referenceRun(engine, LONG);
    const other: GenerateRequest = { ...LONG, prompt: 'Another requester, the same id' };
    const otherRef = await referenceRun(engine, other);
    await injectFault(nc, 'rp', { step_delay_ms: 20 });
    const requestId = 'chosen-twice';
    const a = sendToReplica(nc, 'rp', LONG, { requestId, origin: 'router-a', attempt: 1 });
    const b = sendToReplica(nc, 'rp', other, { requestId, origin: 'router-a', attempt: 1 });
    const ended = (s: typeof a): boolean => s.record.end !== undefined || s.record.error !== undefined;
    await waitFor(
      'both works to stream',
      () => ended(a) || ended(b) || (a.record.chunks.length >= 2 && b.record.chunks.length >= 2),
    );
    assert.ok(!ended(a), `the second request superseded the first: ${a.record.error?.message}`);

    // The router names the attempt's reply subject: its cancel of b's work leaves a's alone.
    await cancelOnReplica(nc, 'rp', {
      requestId,
      origin: 'router-a',
      attempt: 1,
      reply: b.handle.inbox,
      reason: 'b only',
    });
    const [gotA, gotB] = await Promise.all([a.done, b.done]);
    assert.equal(gotB.error, undefined, `b failed: ${gotB.error?.message}`);
    assert.equal(gotB.end?.finishReason, 'cancelled', 'b was not cancelled');
    assert.deepEqual(gotB.tokenIds, otherRef.tokenIds.slice(0, gotB.tokenIds.length), 'b got other tokens');
    assert.equal(gotA.error, undefined, `a failed: ${gotA.error?.message}`);
    assert.equal(gotA.end?.finishReason, 'length', "b's cancel cut a");
    assert.deepEqual(gotA.tokenIds, ref.tokenIds, "a's tokens differ from the reference");
  });
});
