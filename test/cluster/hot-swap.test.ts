/**
 * Hot swap for real: replica and router processes through the CLI, a real nats-server, the
 * bundled model's two versions (other weights, so a token stream shows which version made it).
 * Replicas swap under load and no request fails, each ending exactly as an uninterrupted run of
 * the version it was pinned to at admission; a failover during a swap and a resend through
 * another router resume only on that version; when no replica has it any more, a request that
 * holds tokens ends with `version_unavailable` instead of resuming on another version.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { SwitchyardClient } from '../../src/client/client.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { decodeReplicaHeartbeat, type ReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { decodeSwapReply, encodeSwapCommand, type SwapDone } from '../../src/cluster/messages/swap.ts';
import { ALL_REPLICA_HEARTBEATS, replicaSwapSubject } from '../../src/cluster/subjects.ts';
import { freePort } from '../../src/cli/nats-server.ts';
import { Engine } from '../../src/engine/engine.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { send, type Recorded } from '../helpers/front-door.ts';
import { waitForAliveReplicas } from '../helpers/metrics.ts';
import { TEST_THREADS, TINY_MODEL, TINY_MODEL_V2 } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const MODEL = 'tiny-gpt2';
/** Long enough to be in flight across a swap at the injected step delay. */
const TOKENS = 60;
const STEP_DELAY_MS = 10;

/** Greedy and seeded requests (moderate temperature, as the failover tests use). */
function load(i: number): GenerateRequest {
  const prompt = `swap load ${i % 5}`;
  return i % 2 === 0
    ? { model: MODEL, prompt, maxTokens: TOKENS, temperature: 0, ignoreEos: true }
    : { model: MODEL, prompt, maxTokens: TOKENS, temperature: 0.5, topK: 8, seed: 100 + i, ignoreEos: true };
}

describe('hot swap', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  const refs = new Map<string, Engine>();
  const actors: ActorProcess[] = [];
  let metrics: string;
  const beats = new Map<string, ReplicaHeartbeat>();

  const replica = async (id: string, model = TINY_MODEL): Promise<ActorProcess> => {
    const actor = await ActorProcess.start('replica', id, server.url, ['--model', model]);
    actors.push(actor);
    return actor;
  };
  const alive = (n: number): Promise<void> => waitForAliveReplicas(metrics, 'rt', n);
  const swap = async (id: string, model: string): Promise<SwapDone> => {
    const msg = await nc.request(replicaSwapSubject(id), encodeSwapCommand({ model }), { timeout: 60_000 });
    const reply = decodeSwapReply(msg.data);
    if ('error' in reply) throw reply.error;
    return reply;
  };
  const serving = (id: string): string | undefined => beats.get(id)?.modelVersion;

  /** The got stream is what an uninterrupted run of `version` gives for the same request. */
  async function assertExactOn(
    version: string,
    req: GenerateRequest,
    got: Recorded,
    what: string,
  ): Promise<void> {
    assert.equal(got.error, undefined, `${what} failed: ${got.error?.code} ${got.error?.message}`);
    assert.equal(got.end?.modelVersion, version, `${what} ended on ${got.end?.modelVersion}, not ${version}`);
    const { model: _m, ...params } = req;
    const seed = got.ack?.seed;
    const ref = await refs.get(version)!.generate(seed === undefined ? params : { ...params, seed });
    assert.deepEqual(
      got.tokenIds,
      ref.tokenIds,
      `${what}: tokens differ from an uninterrupted run of ${version}`,
    );
  }

  before(async () => {
    server = await NatsServer.start();
    const port = await freePort();
    metrics = `http://127.0.0.1:${port}/metrics`;
    const [router, , , v1, v2] = await Promise.all([
      ActorProcess.start('router', 'rt', server.url, ['--metrics-port', String(port)]),
      replica('sa'),
      replica('sb'),
      Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS }),
      Engine.start({ modelDir: TINY_MODEL_V2, ...TEST_THREADS }),
    ]);
    actors.push(router);
    refs.set('1', v1).set('2', v2);
    nc = await connectNats({ servers: server.url });
    nc.subscribe(ALL_REPLICA_HEARTBEATS, {
      callback: (err, msg) => {
        if (err) return;
        const hb = decodeReplicaHeartbeat(msg.data);
        beats.set(hb.id, hb);
      },
    });
    await alive(2);
  });

  after(async () => {
    await nc?.close();
    for (const engine of refs.values()) await engine.stop();
    await killAll(actors);
    await server?.stop();
  });

  it('swaps every replica under load: no request fails, each ends exactly on the version it was pinned to', async () => {
    for (const id of ['sa', 'sb']) await injectFault(nc, id, { step_delay_ms: STEP_DELAY_MS });
    const sent: Array<{ req: GenerateRequest; got: Promise<Recorded> }> = [];
    let swapped = false;
    let i = 0;
    // Concurrency 8 from before the first swap until well after the last one.
    const workers = Array.from({ length: 8 }, async () => {
      let after = 0;
      while (!swapped || after++ < 2) {
        const req = load(i++);
        const got = send(nc, req).done;
        sent.push({ req, got });
        await got;
      }
    });
    await waitFor('load on both replicas', () => sent.length >= 12);
    const a = await swap('sa', TINY_MODEL_V2);
    const b = await swap('sb', TINY_MODEL_V2);
    swapped = true;
    await Promise.all(workers);
    assert.deepEqual([a.version, a.swapped, b.version, b.swapped], ['2', true, '2', true]);

    const versions = new Map<string, number>();
    for (const [k, { req, got }] of sent.entries()) {
      const r = await got;
      const pinned = r.ack?.modelVersion;
      assert.ok(pinned === '1' || pinned === '2', `request ${k}: the ack pinned no version (${pinned})`);
      assert.equal(r.chunks[0]?.modelVersion, pinned, `request ${k}: the first chunk moved the pin`);
      await assertExactOn(pinned, req, r, `request ${k}`);
      versions.set(pinned, (versions.get(pinned) ?? 0) + 1);
    }
    assert.ok(
      (versions.get('1') ?? 0) > 0 && (versions.get('2') ?? 0) > 0,
      `versions seen: ${JSON.stringify([...versions])}`,
    );
    // The retired version is stopped once its requests are done: heartbeats stop listing it.
    await waitFor('the old version released', () =>
      ['sa', 'sb'].every((id) => serving(id) === '2' && beats.get(id)?.retiringVersions === undefined),
    );
    assert.match(beats.get('sa')?.modelDigest ?? '', /^[0-9a-f]{64}$/);
  });

  it('a swap to a model that fails to load leaves the replica serving the old version, and says why', async () => {
    await assert.rejects(swap('sa', '/nonexistent/model'), (err: Error) =>
      /does not exist/.test(err.message),
    );
    await waitFor('the failure in a heartbeat', () => /nonexistent/.test(beats.get('sa')?.swapError ?? ''));
    assert.equal(serving('sa'), '2');
    // Malformed commands are refused with a typed answer; the replica serves on.
    for (const bad of ['{"model": 5}', 'not json', JSON.stringify({ model: 'x'.repeat(5_000) })]) {
      const msg = await nc.request(replicaSwapSubject('sa'), bad, { timeout: 10_000 });
      const reply = decodeSwapReply(msg.data);
      assert.ok(
        'error' in reply && reply.error.code === 'invalid_request',
        `${bad.slice(0, 20)}: ${msg.string()}`,
      );
    }
    const r = await send(nc, { ...load(0), maxTokens: 4 }).done;
    assert.equal(r.error, undefined);
  });

  it('a failover during a swap resumes only on a replica of the pinned version; with none left, tokens end as version_unavailable', async () => {
    const [sc, sd] = await Promise.all([replica('sc'), replica('sd')]);
    await alive(4);
    // Only sc visible: the streams start there, on version 1.
    for (const id of ['sa', 'sb', 'sd']) await injectFault(nc, id, { drop_heartbeats: true });
    await alive(1);
    await injectFault(nc, 'sc', { step_delay_ms: 20 });
    const reqs = [0, 1, 2, 3].map((k) => ({ ...load(k), maxTokens: 250 }));
    const sent = reqs.map((req) => send(nc, req));
    await waitFor('a few chunks on every stream', () => sent.every((s) => s.record.chunks.length >= 3));
    for (const id of ['sa', 'sb', 'sd']) await injectFault(nc, id, { drop_heartbeats: false });
    await alive(4);
    // sc swaps: its streams run on in the retired version 1; then sc dies under them.
    await swap('sc', TINY_MODEL_V2);
    assert.ok(sent.every((s) => s.record.end === undefined && s.record.error === undefined));
    await sc.kill();
    for (const [k, s] of sent.entries()) {
      const got = await s.done;
      await assertExactOn('1', reqs[k]!, got, `stream ${k}`);
      assert.ok((got.end?.attempts ?? 0) >= 2, `stream ${k} did not fail over`);
    }

    // Now sd is the last replica with version 1: streams on it lose it when it dies.
    for (const id of ['sa', 'sb']) await injectFault(nc, id, { drop_heartbeats: true });
    await alive(1);
    await injectFault(nc, 'sd', { step_delay_ms: 20 });
    const last = reqs.map((req) => send(nc, req));
    await waitFor('a few chunks on every stream', () => last.every((s) => s.record.chunks.length >= 3));
    for (const id of ['sa', 'sb']) await injectFault(nc, id, { drop_heartbeats: false });
    await alive(3);
    await sd.kill();
    for (const [k, s] of last.entries()) {
      const got = await s.done;
      assert.equal(got.end, undefined, `stream ${k} completed on another version`);
      assert.equal(got.error?.code, 'version_unavailable', `stream ${k}: ${got.error?.message}`);
    }
    // A new request starts on the version served now.
    const fresh = await send(nc, { ...load(0), maxTokens: 4 }).done;
    assert.equal(fresh.end?.modelVersion, '2');
  });

  it('a request that holds no tokens when its version is gone starts over on the version served now', async () => {
    const sf = await replica('sf');
    await alive(3);
    for (const id of ['sa', 'sb']) await injectFault(nc, id, { drop_heartbeats: true });
    await alive(1);
    // Its engine stuck: the request is pinned to 1 and admitted, but no token comes.
    await injectFault(nc, 'sf', { stall: true });
    const req = { ...load(0), maxTokens: 16 };
    const s = send(nc, req);
    await waitFor('the ack', () => s.record.ack !== undefined);
    assert.equal(s.record.ack?.modelVersion, '1');
    for (const id of ['sa', 'sb']) await injectFault(nc, id, { drop_heartbeats: false });
    await sf.kill();
    const got = await s.done;
    assert.equal(got.chunks[0]?.modelVersion, '2', 'the first chunk names the new pin');
    await assertExactOn('2', req, got, 'the re-pinned request');
  });

  it('a resend through another router carries the pin and resumes on the same version', async () => {
    const port = await freePort();
    const rt2 = await ActorProcess.start('router', 'rt2', server.url, ['--metrics-port', String(port)]);
    actors.push(rt2);
    await replica('se');
    // Both routers' views, each time: a stream may reach either router.
    const both = async (n: number): Promise<void> => {
      await alive(n);
      await waitForAliveReplicas(`http://127.0.0.1:${port}/metrics`, 'rt2', n);
    };
    await both(3);
    for (const id of ['sa', 'sb']) await injectFault(nc, id, { drop_heartbeats: true });
    await both(1);
    await injectFault(nc, 'se', { step_delay_ms: 20 });
    const client = await SwitchyardClient.connect({ nats: { servers: server.url } });
    try {
      const reqs = [0, 1, 2, 3].map((k) => ({ ...load(k), maxTokens: 250 }));
      const streams = reqs.map((req) => client.stream(req));
      const tokens = streams.map(() => [] as number[]);
      const reading = streams.map(async (s, k) => {
        for await (const d of s) tokens[k]!.push(...d.tokenIds);
      });
      // A stream that fails is reported by the awaits below, not as an unhandled rejection.
      for (const r of reading) r.catch(() => undefined);
      await waitFor('tokens on every stream', () => tokens.every((t) => t.length >= 3));
      for (const id of ['sa', 'sb']) await injectFault(nc, id, { drop_heartbeats: false });
      await both(3);
      assert.deepEqual(
        streams.map((s) => s.modelVersion),
        ['1', '1', '1', '1'],
      );
      // Kill whichever router owns streams (both may); the client resends to the other with its tokens.
      const owners = new Set(streams.map((s) => s.routerId));
      const victim = owners.has('rt2') ? rt2 : actors.find((a) => a.id === 'rt')!;
      await victim.kill();
      await Promise.all(reading);
      for (const [k, s] of streams.entries()) {
        const result = await s.result;
        assert.equal(result.modelVersion, '1', `stream ${k} ended on ${result.modelVersion}`);
        const { model: _m, ...params } = reqs[k]!;
        const seed = await s.seed;
        const ref = await refs.get('1')!.generate(seed === undefined ? params : { ...params, seed });
        assert.deepEqual(tokens[k], ref.tokenIds, `stream ${k}: tokens differ from version 1's run`);
      }
    } finally {
      await client.close();
    }
  });
});
