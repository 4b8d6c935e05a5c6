/**
 * Replicas served from the registry, for real: replica and router processes through the CLI on
 * a nats-server with JetStream. A replica started from `registry://tiny-gpt2@stable` fetches the
 * version into its digest cache, serves it as the registry's id@version, and hot swaps when the
 * alias moves; a replica started while JetStream does not answer starts from that cache.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import { decodeReplicaHeartbeat, type ReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { ALL_REPLICA_HEARTBEATS, MODELS_OBJECT_BUCKET } from '../../src/cluster/subjects.ts';
import { Registry } from '../../src/registry/registry.ts';
import { objectName } from '../../src/registry/objects.ts';
import { Objm } from '@nats-io/obj';
import { ActorProcess, killAll, waitFor } from '../helpers/cluster.ts';
import { request } from '../helpers/front-door.ts';
import { TINY_MODEL, TINY_MODEL_V2 } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const MODEL = 'tiny-gpt2';

describe('replicas from the registry', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let registry: Registry;
  const actors: ActorProcess[] = [];
  const beats = new Map<string, ReplicaHeartbeat>();
  const cache = mkdtempSync(join(tmpdir(), 'sy-follow-cache-'));

  const watchBeats = (conn: NatsConnection): void => {
    conn.subscribe(ALL_REPLICA_HEARTBEATS, {
      callback: (err, msg) => {
        if (err) return;
        const hb = decodeReplicaHeartbeat(msg.data);
        beats.set(hb.id, hb);
      },
    });
  };

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connectNats({ servers: server.url });
    watchBeats(nc);
    registry = await Registry.open(nc, { create: true });
    // The registry's version ids are its own: the folders' manifests both say tiny-gpt2, 1 and 2.
    await registry.push(TINY_MODEL, { version: 'a' });
    await registry.push(TINY_MODEL_V2, { version: 'b' });
    await registry.alias(MODEL, 'stable', 'a', { by: 'test', reason: 'start' });
  });

  after(async () => {
    await nc?.close();
    await killAll(actors);
    await server?.stop();
    rmSync(cache, { recursive: true, force: true });
  });

  it('serves registry://<id>@stable as the registry version and hot swaps when the alias moves', async () => {
    const args = ['--model', `registry://${MODEL}@stable`, '--model-cache', cache];
    const [router, replica] = await Promise.all([
      ActorProcess.start('router', 'fr', server.url),
      ActorProcess.start('replica', 'fa', server.url, args),
    ]);
    actors.push(router, replica);
    await waitFor('the replica serving version a', () => beats.get('fa')?.modelVersion === 'a');
    const a = (await registry.resolve(MODEL, 'a')).digest;
    assert.equal(beats.get('fa')?.modelDigest, a, 'the heartbeat names the registry digest');
    const before = await request(nc, { model: MODEL, prompt: 'follow', maxTokens: 8, temperature: 0 });
    assert.equal(before.end?.modelVersion, 'a', before.error?.message);

    await registry.alias(MODEL, 'stable', 'b', { by: 'test', reason: 'move' });
    await waitFor('the replica serving version b', () => beats.get('fa')?.modelVersion === 'b', 60_000);
    assert.equal(beats.get('fa')?.modelDigest, (await registry.resolve(MODEL, 'b')).digest);
    const after = await request(nc, { model: MODEL, prompt: 'follow', maxTokens: 8, temperature: 0 });
    assert.equal(after.end?.modelVersion, 'b', after.error?.message);
    assert.notDeepEqual(after.tokenIds, before.tokenIds, 'version b has other weights');

    // A version whose stored file was changed: the replica refuses it and serves b on.
    // Other content than a's (one more file), so that its objects and cache folder are its own.
    const folder = join(cache, 'folder-c');
    cpSync(TINY_MODEL, folder, { recursive: true });
    writeFileSync(join(folder, 'notes.txt'), 'version c\n');
    const { manifest } = await registry.push(folder, { version: 'c' });
    const objects = await new Objm(nc).open(MODELS_OBJECT_BUCKET);
    await objects.putBlob(
      { name: objectName(MODEL, manifest.digest, 'tokenizer.json') },
      new TextEncoder().encode('{"tampered":true}'),
    );
    await registry.alias(MODEL, 'stable', 'c', { by: 'test', reason: 'corrupt' });
    await waitFor('the refusal in a heartbeat', () =>
      /tokenizer\.json/.test(beats.get('fa')?.swapError ?? ''),
    );
    assert.match(beats.get('fa')?.swapError ?? '', /sha256/);
    assert.equal(beats.get('fa')?.modelVersion, 'b');
    const still = await request(nc, { model: MODEL, prompt: 'follow', maxTokens: 8, temperature: 0 });
    assert.equal(still.end?.modelVersion, 'b', still.error?.message);
    await registry.alias(MODEL, 'stable', 'b', { by: 'test', reason: 'back' });
  });

  it('starts from its digest cache while JetStream does not answer', async () => {
    // Another server with no JetStream: the replica's registry lookups get no answer.
    const bare = await NatsServer.start();
    const conn = await connectNats({ servers: bare.url });
    try {
      watchBeats(conn);
      const args = [
        '--model',
        `registry://${MODEL}@stable`,
        '--model-cache',
        cache,
        '--registry-timeout-ms',
        '2000',
      ];
      const [router, replica] = await Promise.all([
        ActorProcess.start('router', 'fr2', bare.url),
        ActorProcess.start('replica', 'fc', bare.url, args),
      ]);
      actors.push(router, replica);
      assert.match(
        replica.log,
        /registry is unreachable: starting registry:\/\/tiny-gpt2@b from the local cache/,
      );
      await waitFor('the cached replica serving b', () => beats.get('fc')?.modelVersion === 'b');
      const got = await request(conn, { model: MODEL, prompt: 'cached', maxTokens: 4, temperature: 0 });
      assert.equal(got.end?.modelVersion, 'b', got.error?.message);
    } finally {
      await conn.close();
      await killAll(actors.splice(-2));
      await bare.stop();
    }
  });
});
