/**
 * Canary splits at the router, for real: a nats-server with JetStream, one replica process per
 * version of the bundled model (`rep-v1` serves version 1, `rep-v2` version 2) and an in-process
 * router with capture on. The router starts before the rollouts bucket exists and picks the
 * rollout up once it is created; every unpinned request is served on the version `armOf` names
 * for its id (exact, not statistical) and its completion event records that arm; a request that
 * names a version is not split again and is recorded on that version's arm; a weight change
 * reaches the router from its watch, after which every new request goes stable.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { ensureCaptureStreams } from '../../src/capture/streams.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { decodeCompletionEvent, type CompletionEvent } from '../../src/cluster/messages/capture.ts';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { ALL_COMPLETIONS, GENERATE_SUBJECT, ROLLOUTS_BUCKET } from '../../src/cluster/subjects.ts';
import { armOf } from '../../src/rollout/arm.ts';
import { encodeRolloutRecord } from '../../src/rollout/record.ts';
import type { RolloutRecord } from '../../src/rollout/types.ts';
import { startRouter, type Router } from '../../src/router/router.ts';
import { ActorProcess, killAll, waitFor } from '../helpers/cluster.ts';
import { sendRecorded, type Recorded } from '../helpers/front-door.ts';
import { TINY_MODEL, TINY_MODEL_V2 } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { sampleRollout } from '../rollout/record-fixture.ts';

const MODEL = 'tiny-gpt2';
const ROLLOUT_ID = 'ro-split-1';
const REQUESTS = 40;
/** Requests in flight at once: far below either replica's batch and queue, so no arm is full. */
const CONCURRENCY = 8;
const VERSION_OF = { stable: '1', canary: '2' } as const;

describe('rollout splits at the router', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let router: Router;
  let kv: KV;
  const actors: ActorProcess[] = [];
  /** The KV revision of each model's rollout the router applied last. */
  const applied = new Map<string, number>();
  const completions = new Map<string, CompletionEvent>();

  const record = (fields: Partial<RolloutRecord>): RolloutRecord =>
    sampleRollout({
      id: ROLLOUT_ID,
      model: MODEL,
      stable: '1',
      canary: '2',
      canary_replicas: ['rep-v2'],
      ...fields,
    });

  /** Puts a rollout and waits until the router applied that revision (from its watch). */
  async function putRollout(fields: Partial<RolloutRecord>): Promise<void> {
    const revision = await kv.put(MODEL, encodeRolloutRecord(record(fields)));
    await waitFor(
      `the router applying revision ${revision}`,
      () => (applied.get(MODEL) ?? 0) >= revision,
      15_000,
    );
  }

  function send(requestId: string, extra: Partial<GenerateRequest> = {}): Promise<Recorded> {
    const req: GenerateRequest = {
      model: MODEL,
      prompt: `split ${requestId}`,
      maxTokens: 3,
      temperature: 0,
      ignoreEos: true,
      ...extra,
    };
    return sendRecorded(nc, GENERATE_SUBJECT, req, { requestId, deadline: Date.now() + 30_000 }).done;
  }

  async function sendAll(ids: string[]): Promise<Map<string, Recorded>> {
    const got = new Map<string, Recorded>();
    for (let i = 0; i < ids.length; i += CONCURRENCY) {
      const batch = ids.slice(i, i + CONCURRENCY);
      for (const r of await Promise.all(batch.map((id) => send(id)))) got.set(r.requestId, r);
    }
    return got;
  }

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connectNats({ servers: server.url });
    await ensureCaptureStreams(nc, { storage: 'memory' });
    nc.subscribe(ALL_COMPLETIONS, {
      callback: (err, msg) => {
        if (err) return;
        const event = decodeCompletionEvent(msg.data);
        if (event.final) completions.set(event.request_id, event);
      },
    });
    const [v1, v2] = await Promise.all([
      ActorProcess.start('replica', 'rep-v1', server.url, ['--model', TINY_MODEL]),
      ActorProcess.start('replica', 'rep-v2', server.url, ['--model', TINY_MODEL_V2]),
    ]);
    actors.push(v1, v2);
    // Before the rollouts bucket exists: the router must keep trying to watch it.
    router = await startRouter({
      id: 'rt-split',
      nats: { servers: server.url },
      capture: { enabled: true },
      onRolloutApplied: (model, revision) => applied.set(model, revision),
    });
    kv = await new Kvm(jetstream(nc)).create(ROLLOUTS_BUCKET, { history: 1, storage: 'memory' });
  });

  after(async () => {
    await router?.stop();
    await nc?.close();
    await killAll(actors);
    await server?.stop();
  });

  it('picks up a rollout created after it started, and serves every request on the arm armOf names', async () => {
    await putRollout({ weight: 30 });
    const ids = Array.from({ length: REQUESTS }, (_, i) => `split-${i}`);
    const expected = new Map(ids.map((id) => [id, armOf(ROLLOUT_ID, id, 30)]));
    const canaries = [...expected.values()].filter((a) => a === 'canary').length;
    // The ids are fixed, so this is a fact about them: both arms are exercised.
    assert.ok(canaries > 0 && canaries < REQUESTS, `ids give ${canaries} canary requests`);
    const got = await sendAll(ids);
    for (const id of ids) {
      const r = got.get(id)!;
      const arm = expected.get(id)!;
      assert.equal(r.error, undefined, `${id}: ${r.error?.code} ${r.error?.message}`);
      assert.equal(
        r.ack?.modelVersion,
        VERSION_OF[arm],
        `${id} (${arm}) was pinned to ${r.ack?.modelVersion}`,
      );
      assert.equal(r.end?.modelVersion, VERSION_OF[arm], `${id} (${arm}) ended on ${r.end?.modelVersion}`);
    }
    await waitFor('every completion event', () => ids.every((id) => completions.has(id)));
    for (const id of ids) {
      const event = completions.get(id)!;
      assert.deepEqual(event.rollout, { id: ROLLOUT_ID, arm: expected.get(id) }, id);
      assert.equal(event.model_version, VERSION_OF[expected.get(id)!], id);
    }
  });

  it('does not split a request that names its version: its arm is that version’s', async () => {
    const stableById = Array.from({ length: 20 }, (_, i) => `pinned-${i}`).find(
      (id) => armOf(ROLLOUT_ID, id, 30) === 'stable',
    )!;
    const canaryById = Array.from({ length: 20 }, (_, i) => `pinned-c-${i}`).find(
      (id) => armOf(ROLLOUT_ID, id, 30) === 'canary',
    )!;
    // Each names the version its id would not be split to.
    const [toCanary, toStable] = await Promise.all([
      send(stableById, { version: '2' }),
      send(canaryById, { version: '1' }),
    ]);
    assert.equal(toCanary.end?.modelVersion, '2');
    assert.equal(toStable.end?.modelVersion, '1');
    await waitFor(
      'their completion events',
      () => completions.has(stableById) && completions.has(canaryById),
    );
    assert.deepEqual(completions.get(stableById)!.rollout, { id: ROLLOUT_ID, arm: 'canary' });
    assert.deepEqual(completions.get(canaryById)!.rollout, { id: ROLLOUT_ID, arm: 'stable' });
  });

  it('applies a weight change from the watch: at weight 0 every new request goes stable', async () => {
    await putRollout({ weight: 0, state: 'rolling_back' });
    // Ids the 30% split sent to the canary: now they must not go there.
    const ids = Array.from({ length: 60 }, (_, i) => `after-${i}`)
      .filter((id) => armOf(ROLLOUT_ID, id, 30) === 'canary')
      .slice(0, 8);
    assert.ok(ids.length > 0);
    const got = await sendAll(ids);
    for (const id of ids) assert.equal(got.get(id)!.end?.modelVersion, '1', id);
  });
});
