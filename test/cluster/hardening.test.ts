/**
 * One request can hurt only itself (DESIGN.md invariant 8), for real: replica and router
 * processes through the CLI, a real nats-server, the bundled model. A resume that had already
 * ended (its stop sequence completed, an end-of-sequence token, max_tokens 0) ends at once and
 * breaks no engine; an attempt that fails inside an engine is retried on one other replica only,
 * and the client does not resend it; a replica whose engine thread dies exits 1 and its request
 * is retried elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { decodeReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { ALL_REPLICA_HEARTBEATS } from '../../src/cluster/subjects.ts';
import { SwitchyardClient } from '../../src/client/client.ts';
import { freePort } from '../../src/cli/nats-server.ts';
import { Engine } from '../../src/engine/engine.ts';
import { EngineFailedError } from '../../src/errors/errors.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { consume, referenceRun, scrape, sendToReplica, tokensToComplete } from '../helpers/hardening.ts';
import { TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const MODEL = 'tiny-gpt2';
const REPLICAS = ['ra', 'rb'] as const;
const NORMAL: GenerateRequest = { model: MODEL, prompt: 'The yard at dawn', maxTokens: 24, temperature: 0 };
const failovers = (reason: string): string => `switchyard_failovers_total{reason="${reason}",router="rt"}`;
const routed = (code: string): string =>
  `switchyard_requests_total{model="${MODEL}",code="${code}",router="rt"}`;

describe('one request hurts only itself', () => {
  let server: NatsServer;
  let client: SwitchyardClient;
  let engine: Engine;
  let actors: ActorProcess[] = [];
  let metrics: string;
  let normalRef: { tokenIds: number[]; text: string };

  before(async () => {
    server = await NatsServer.start();
    const port = await freePort();
    metrics = `http://127.0.0.1:${port}/metrics`;
    const started = await Promise.all([
      ActorProcess.start('router', 'rt', server.url, ['--metrics-port', String(port)]),
      ...REPLICAS.map((id) => ActorProcess.start('replica', id, server.url)),
      Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS }),
    ]);
    engine = started.pop() as Engine;
    actors = started as ActorProcess[];
    client = await SwitchyardClient.connect({ nats: { servers: server.url } });
    normalRef = await referenceRun(engine, NORMAL);
    // The router must know both replicas before the tests count on either.
    await waitFor('both replicas alive at the router', async () => {
      return (await scrape(metrics, 'switchyard_replicas{state="alive",router="rt"}')) === 2;
    });
  });

  after(async () => {
    await client?.close();
    await engine?.stop();
    await killAll(actors);
    await server?.stop();
  });

  /** Both replicas serve a normal greedy request, each directly, with the reference text. */
  async function bothServeNormally(why: string): Promise<void> {
    for (const id of REPLICAS) {
      const got = await sendToReplica(client.nc, id, NORMAL).done;
      assert.equal(got.error, undefined, `${id} ${why}: ${got.error?.code} ${got.error?.message}`);
      assert.equal(got.text, normalRef.text, `${id} ${why}: text differs from the reference`);
      assert.deepEqual(got.tokenIds, normalRef.tokenIds, `${id} ${why}`);
    }
  }

  it('resumes that already ended (stop completed, EOS, max_tokens 0) end at once and break no engine', async () => {
    const base: GenerateRequest = { model: MODEL, prompt: 'Once upon a time', maxTokens: 40, temperature: 0 };
    const ref = await referenceRun(engine, { ...base, ignoreEos: true });
    // A stop string of whole characters from the middle of the reference text (a replacement
    // character stands for bytes a later token may still complete): the resume stops right
    // after the token that completes it.
    const found = /[A-Za-z]{4}/.exec(ref.text.slice(4));
    assert.ok(found, `no plain word in the reference text: ${JSON.stringify(ref.text)}`);
    const stop = found[0];
    const cut = tokensToComplete(engine, ref.tokenIds, stop);
    const eos = engine.info.eosTokenIds[0]!;
    assert.ok(cut >= 2, 'the stop sequence should need more than one resumed token');
    assert.ok(
      !ref.tokenIds.slice(0, cut).some((t) => engine.info.eosTokenIds.includes(t)),
      'EOS before the cut',
    );
    const deadly: Array<{ name: string; req: GenerateRequest; finish: 'stop' | 'length' }> = [
      {
        name: 'stop sequence completed',
        req: { ...base, stop: [stop], resumeTokenIds: ref.tokenIds.slice(0, cut) },
        finish: 'stop',
      },
      {
        name: 'ends with EOS',
        req: { ...base, resumeTokenIds: [...ref.tokenIds.slice(0, 5), eos] },
        finish: 'stop',
      },
      {
        name: 'max_tokens 0',
        req: { ...base, maxTokens: 0, resumeTokenIds: ref.tokenIds.slice(0, 5) },
        finish: 'length',
      },
    ];
    for (const { name, req, finish } of deadly) {
      // Through the router and the client library…
      const got = await client.generate(req, { timeoutMs: 30_000 });
      assert.equal(got.finishReason, finish, `${name}: finish reason`);
      assert.deepEqual(got.tokenIds, [], `${name}: tokens generated after a resume that had ended`);
      assert.equal(got.text, '', name);
      assert.equal(got.usage.completionTokens, 0, name);
      assert.equal(got.attempts, 1, `${name}: the router retried it`);
      // …and to each replica directly, so both have certainly seen it.
      for (const id of REPLICAS) {
        const direct = await sendToReplica(client.nc, id, req).done;
        assert.equal(direct.error, undefined, `${name} on ${id}: ${direct.error?.message}`);
        assert.equal(direct.end?.finishReason, finish, `${name} on ${id}`);
        assert.equal(direct.chunks.length, 0, `${name} on ${id}: chunks sent`);
        assert.equal(direct.end?.usage.completionTokens, 0, `${name} on ${id}`);
      }
    }
    await bothServeNormally('after the resumes that had ended');
    for (const actor of actors) assert.equal(actor.child.exitCode, null, `${actor.id} exited`);
  });

  it('engine_failed is retried on one other replica, then ends the request; the client does not resend', async () => {
    const before = {
      engineFailovers: await scrape(metrics, failovers('engine_failed')),
      failed: await scrape(metrics, routed('engine_failed')),
      ok: await scrape(metrics, routed('ok')),
    };
    // Two failed steps per replica: an injected failure fails the running batch, and the first
    // step of an idle engine has none yet (the request still waits for its prefill), so the
    // second step is the one that fails the request. Both faults are then spent: had the client
    // resent, its third attempt would find a healthy engine and succeed.
    for (const id of REPLICAS) await injectFault(client.nc, id, { fail_steps: 2 });
    await assert.rejects(client.generate(NORMAL, { timeoutMs: 30_000 }), (err: unknown) => {
      assert.ok(err instanceof EngineFailedError, `expected EngineFailedError, got ${String(err)}`);
      return true;
    });
    assert.equal(
      (await scrape(metrics, failovers('engine_failed'))) - before.engineFailovers,
      1,
      'the router should retry an engine failure exactly once',
    );
    assert.equal((await scrape(metrics, routed('engine_failed'))) - before.failed, 1, 'one request failed');
    assert.equal((await scrape(metrics, routed('ok'))) - before.ok, 0, 'a resend succeeded');
    // Both faults were spent: both engines serve again.
    await bothServeNormally('after an engine failure');
  });

  it('with one faulty replica, requests complete exactly on the healthy one', async () => {
    await injectFault(client.nc, 'ra', { fail_steps: 1_000 });
    try {
      const start = await scrape(metrics, failovers('engine_failed'));
      const results = [];
      // Until one request has met the faulty replica (each does with odds 1/2), at least 3.
      for (let i = 0; i < 20; i++) {
        results.push(await client.generate(NORMAL, { timeoutMs: 30_000 }));
        if (i >= 2 && (await scrape(metrics, failovers('engine_failed'))) > start) break;
      }
      const retried = (await scrape(metrics, failovers('engine_failed'))) - start;
      assert.ok(retried >= 1, `none of ${results.length} requests met the faulty replica`);
      for (const [i, got] of results.entries()) {
        assert.equal(got.text, normalRef.text, `request ${i}: text differs from the reference`);
        assert.deepEqual(got.tokenIds, normalRef.tokenIds, `request ${i}`);
        assert.ok(got.attempts <= 2, `request ${i} took ${got.attempts} attempts`);
      }
      assert.equal(
        results.filter((r) => r.attempts === 2).length,
        retried,
        'every retried request (and only those) took a second attempt',
      );
    } finally {
      await injectFault(client.nc, 'ra', { fail_steps: 0 });
    }
  });

  // Last: both replicas die.
  it('a dead engine worker: the replica exits 1 and its request is retried on the other', async () => {
    const long: GenerateRequest = {
      model: MODEL,
      prompt: 'A long night',
      maxTokens: 160,
      temperature: 0,
      ignoreEos: true,
    };
    const ref = await referenceRun(engine, long);
    for (const id of REPLICAS) await injectFault(client.nc, id, { step_delay_ms: 15 });
    const active = new Map<string, number>();
    const sub = client.nc.subscribe(ALL_REPLICA_HEARTBEATS, {
      callback: (_err, msg) => {
        const hb = decodeReplicaHeartbeat(msg.data);
        active.set(hb.id, hb.activeSequences);
      },
    });
    try {
      const first = consume(client.stream(long, { timeoutMs: 60_000 }));
      await waitFor(
        'tokens and the replica running the request',
        () => first.got.tokenIds.length >= 3 && [...active.values()].includes(1),
      );
      const victimId = REPLICAS.find((id) => active.get(id) === 1)!;
      const victim = actors.find((a) => a.id === victimId)!;
      const survivor = REPLICAS.find((id) => id !== victimId)!;
      const retriedBefore = await scrape(metrics, failovers('engine_failed'));
      await injectFault(client.nc, victimId, { crash: 'worker' });
      assert.equal(await victim.exited, 1, `a replica whose engine worker died must exit 1:\n${victim.log}`);
      const got = await first.done;
      assert.equal(got.error, undefined, `the request failed: ${String(got.error)}`);
      assert.equal(got.result?.attempts, 2, 'the request should have been retried once');
      assert.deepEqual(got.tokenIds, ref.tokenIds, 'tokens differ from an uninterrupted run');
      assert.equal(got.text, ref.text);
      assert.equal((await scrape(metrics, failovers('engine_failed'))) - retriedBefore, 1);

      // The tokenizer thread dies on the last replica: it exits 1 too, and its request, with
      // nowhere left to go, ends with engine_failed (which the client does not resend).
      const last = actors.find((a) => a.id === survivor)!;
      const orphan = consume(client.stream(long, { timeoutMs: 60_000 }));
      await waitFor('the last replica to stream', () => orphan.got.tokenIds.length >= 2);
      await injectFault(client.nc, survivor, { crash: 'tokenizer' });
      assert.equal(await last.exited, 1, `a replica whose tokenizer thread died must exit 1:\n${last.log}`);
      const ended = await orphan.done;
      assert.ok(
        ended.error instanceof EngineFailedError,
        `expected EngineFailedError, got ${String(ended.error)}`,
      );
    } finally {
      sub.unsubscribe();
    }
  });
});
