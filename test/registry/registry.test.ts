/**
 * The model registry on a real nats-server with JetStream: push and fetch byte-identical copies,
 * idempotent pushes and refused overwrites (also from two concurrent pushers), alias moves with
 * their history, alias watches, removal rules, and corrupt files refused in the registry and in
 * the cache.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { connectNats } from '../../src/cluster/connection.ts';
import { MODELS_OBJECT_BUCKET } from '../../src/cluster/subjects.ts';
import { ModelNotFoundError, RegistryError, StartupError } from '../../src/errors/errors.ts';
import { fetchVersion } from '../../src/registry/cache.ts';
import { objectName } from '../../src/registry/objects.ts';
import { Registry } from '../../src/registry/registry.ts';
import {
  VERSION_MANIFEST_FILE,
  decodeVersionManifest,
  versionDigest,
} from '../../src/registry/version-manifest.ts';
import type { AliasRecord } from '../../src/registry/alias-record.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { modelFolder, tempDir } from './helpers.ts';

describe('model registry', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let registry: Registry;
  let objects: ObjectStore;
  let work: string;

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connectNats({ servers: server.url });
    registry = await Registry.open(nc, { create: true });
    objects = await new Objm(nc).open(MODELS_OBJECT_BUCKET);
    work = tempDir('core');
  });

  after(async () => {
    await nc?.close();
    await server?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  const objectGone = async (name: string): Promise<boolean> => {
    const info = await objects.info(name);
    return info === null || info.deleted;
  };

  it('pushes a folder and fetches a byte-identical, verified copy', async () => {
    const folder = modelFolder(work, 'm1', { id: 'alpha', version: '1.0' });
    const { manifest, created } = await registry.push(folder, {
      lineage: { trainer: 'sft --epochs 1' },
      by: 'ann@lab',
    });
    assert.equal(created, true);
    assert.equal(manifest.id, 'alpha', 'the id comes from manifest.json');
    assert.equal(manifest.version, '1.0');
    assert.deepEqual(
      manifest.files.map((f) => f.path),
      ['manifest.json', 'onnx/model.onnx', 'tokenizer.json'],
    );
    assert.equal(manifest.digest, versionDigest(manifest.files));
    assert.equal(manifest.pushedBy, 'ann@lab');
    assert.equal(manifest.lineage.trainer, 'sft --epochs 1');

    const cache = join(work, 'cache-a');
    const [dir, again] = await Promise.all([
      fetchVersion(registry, manifest, cache),
      fetchVersion(registry, manifest, cache),
    ]);
    assert.equal(dir, join(cache, manifest.digest));
    assert.equal(again, dir, 'two fetches at once both succeed with the same folder');
    for (const f of manifest.files) {
      assert.deepEqual(readFileSync(join(dir, f.path)), readFileSync(join(folder, f.path)), f.path);
    }
    const kept = decodeVersionManifest(readFileSync(join(dir, VERSION_MANIFEST_FILE)), 'cached');
    assert.equal(kept.digest, manifest.digest);
    assert.deepEqual(readdirSync(cache), [manifest.digest], 'no temp folder is left behind');
  });

  it('a second push of the same content is a no-op; another digest under that version is refused', async () => {
    const folder = modelFolder(work, 'm2', { id: 'beta', version: '1' });
    const first = await registry.push(folder);
    const copy = join(work, 'm2-copy');
    cpSync(folder, copy, { recursive: true });
    const second = await registry.push(folder);
    assert.equal(second.created, false);
    assert.equal(second.manifest.createdAt, first.manifest.createdAt, 'the stored manifest is kept');

    writeFileSync(join(folder, 'tokenizer.json'), '{"changed":true}');
    await assert.rejects(registry.push(folder), (err: unknown) => {
      assert.ok(err instanceof RegistryError, String(err));
      assert.equal(err.reason, 'version_conflict');
      assert.match(err.message, new RegExp(first.manifest.digest));
      assert.match(err.message, /this folder's digest is [0-9a-f]{64}/);
      assert.doesNotMatch(err.message, new RegExp(`digest is ${first.manifest.digest}`));
      return true;
    });
    assert.equal(
      (await registry.getVersion('beta', '1'))?.digest,
      first.manifest.digest,
      'never overwritten',
    );
    // What up does: content the registry holds under any version is that version, not a new one.
    const again = await registry.push(copy, { version: '9', reuseContent: true });
    const stored = await registry.push(copy, { version: '9' });
    assert.deepEqual([again.created, stored.created], [false, true]);
    assert.equal(again.manifest.version, '1', 'the version that holds the content');
    assert.equal(stored.manifest.version, '9');
  });

  it('of two concurrent pushers of one version with different files, one wins and the loser leaves no files', async () => {
    const a = modelFolder(work, 'race-a', { id: 'gamma', version: '7', tag: 'a' });
    const b = modelFolder(work, 'race-b', { id: 'gamma', version: '7', tag: 'b' });
    const results = await Promise.allSettled([registry.push(a), registry.push(b)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    assert.equal(lost.length, 1);
    const reason = (lost[0] as PromiseRejectedResult).reason as RegistryError;
    assert.equal(reason.reason, 'version_conflict');
    const stored = await registry.getVersion('gamma', '7');
    assert.ok(stored !== undefined);
    const winnerDir =
      stored.digest ===
      (won[0] as PromiseFulfilledResult<{ manifest: { digest: string } }>).value.manifest.digest;
    assert.ok(winnerDir, 'the stored version is the winner');
    const loserDigest = [...reason.message.matchAll(/[0-9a-f]{64}/g)]
      .map((m) => m[0])
      .find((d) => d !== stored.digest);
    assert.ok(loserDigest !== undefined);
    for (const f of stored.files) {
      assert.equal(
        await objectGone(objectName('gamma', stored.digest, f.path)),
        false,
        `winner's ${f.path} stays`,
      );
      assert.equal(
        await objectGone(objectName('gamma', loserDigest, f.path)),
        true,
        `loser's ${f.path} is deleted`,
      );
    }
  });

  it('moves an alias and keeps who moved it, when and why; refuses an alias to a missing version', async () => {
    await registry.push(modelFolder(work, 'd1', { id: 'delta', version: '1' }));
    await registry.push(modelFolder(work, 'd2', { id: 'delta', version: '2' }));
    await registry.alias('delta', 'stable', '1', { by: 'ann@lab', reason: 'first release' });
    await registry.alias('delta', 'stable', '2', { by: 'bob@lab', reason: 'canary won' });
    assert.equal((await registry.resolve('delta', 'stable')).version, '2');
    assert.equal((await registry.resolve('delta', '1')).version, '1', 'a version resolves to itself');
    const history = await registry.aliasHistory('delta', 'stable');
    assert.deepEqual(
      history.map((h) => [h.version, h.by, h.reason]),
      [
        ['1', 'ann@lab', 'first release'],
        ['2', 'bob@lab', 'canary won'],
      ],
    );
    assert.ok(history.every((h) => Number.isFinite(Date.parse(h.at))));
    const shown = await registry.show('delta', 'stable');
    assert.equal(shown.manifest.version, '2');
    assert.deepEqual(
      shown.aliases.map((a) => a.alias),
      ['stable'],
    );
    assert.equal(shown.history.length, 2);
    await assert.rejects(registry.alias('delta', 'stable', '9'), (err: unknown) => {
      assert.ok(err instanceof ModelNotFoundError);
      assert.match(err.message, /delta@9: no such version/);
      assert.match(err.message, /versions of delta: 1, 2/);
      return true;
    });
    await assert.rejects(registry.resolve('delta', 'nope'), ModelNotFoundError);
  });

  it('an alias watch reports the current version first, then each move', async () => {
    const seen: AliasRecord[] = [];
    let notify: () => void = () => undefined;
    const watch = await registry.watchAlias('delta', 'stable', (r) => {
      seen.push(r);
      notify();
    });
    const next = async (count: number): Promise<void> => {
      while (seen.length < count) await new Promise<void>((resolve) => (notify = resolve));
    };
    try {
      await next(1);
      assert.equal(seen[0]?.version, '2', 'the current value first');
      await registry.alias('delta', 'stable', '1', { by: 'cy@lab', reason: 'roll back' });
      await next(2);
      assert.equal(seen[1]?.version, '1');
      assert.equal(seen[1]?.reason, 'roll back');
    } finally {
      watch.stop();
    }
  });

  it('refuses to remove a version an alias or a replica uses, and removes an unused one with its files', async () => {
    // delta@stable points at 1 now.
    await assert.rejects(registry.remove('delta', '1', { inUseBy: [] }), (err: unknown) => {
      assert.ok(err instanceof RegistryError);
      assert.equal(err.reason, 'in_use');
      assert.match(err.message, /alias stable/);
      return true;
    });
    await assert.rejects(registry.remove('delta', '2', { inUseBy: ['rep-b', 'rep-a'] }), (err: unknown) => {
      assert.ok(err instanceof RegistryError);
      assert.match(err.message, /replicas rep-a, rep-b/);
      return true;
    });
    const gone = await registry.remove('delta', '2', { inUseBy: [] });
    assert.equal(await registry.getVersion('delta', '2'), undefined);
    assert.deepEqual(
      (await registry.list('delta')).map((m) => m.version),
      ['1'],
    );
    for (const f of gone.files)
      assert.equal(await objectGone(objectName('delta', gone.digest, f.path)), true, f.path);
    await assert.rejects(registry.remove('delta', '2', { inUseBy: [] }), ModelNotFoundError);
  });

  it('refuses a version whose file in the object store was changed, and removes the partial copy', async () => {
    const { manifest } = await registry.push(modelFolder(work, 'e1', { id: 'eps', version: '1' }));
    const name = objectName('eps', manifest.digest, 'tokenizer.json');
    await objects.putBlob({ name }, new TextEncoder().encode('{"tag":"tampered"}'));
    const cache = join(work, 'cache-e');
    const expected = manifest.files.find((f) => f.path === 'tokenizer.json')?.sha256 ?? '';
    await assert.rejects(fetchVersion(registry, manifest, cache), (err: unknown) => {
      assert.ok(err instanceof StartupError, String(err));
      assert.equal(err.reason, 'model_corrupt');
      assert.match(err.message, /file tokenizer\.json in the registry/);
      assert.match(err.message, new RegExp(`expected ${expected}`));
      assert.match(err.message, /sha256 [0-9a-f]{64}/);
      return true;
    });
    assert.deepEqual(readdirSync(cache), [], 'nothing is left in the cache');
  });

  it('refuses a cached copy whose file changed on disk, and removes it', async () => {
    const manifest = await registry.resolve('alpha', '1.0');
    const cache = join(work, 'cache-f');
    const dir = await fetchVersion(registry, manifest, cache);
    const file = join(dir, 'onnx', 'model.onnx');
    const bytes = readFileSync(file);
    bytes[1000] = (bytes[1000] ?? 0) ^ 0xff;
    writeFileSync(file, bytes);
    await assert.rejects(fetchVersion(registry, manifest, cache), (err: unknown) => {
      assert.ok(err instanceof StartupError);
      assert.equal(err.reason, 'model_corrupt');
      assert.match(err.message, /file onnx\/model\.onnx in the cache/);
      return true;
    });
    assert.equal(existsSync(dir), false, 'the bad copy is removed');
    assert.equal(await fetchVersion(registry, manifest, cache), dir, 'the next fetch downloads it again');
  });
});
