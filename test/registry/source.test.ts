/**
 * `registry://` URLs and resolveModel: the URL parser's errors, the cache folder's defaults, a
 * resolve online (fetch, record the ref), and with the server stopped the fallback to the
 * recorded ref's verified copy, or a clear error when nothing is cached for that ref.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import { ModelNotFoundError, RegistryError, StartupError } from '../../src/errors/errors.ts';
import { defaultModelCacheDir } from '../../src/registry/cache.ts';
import { Registry } from '../../src/registry/registry.ts';
import { isRegistryUrl, parseRegistryUrl, resolveModel } from '../../src/registry/source.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { modelFolder, tempDir } from './helpers.ts';

describe('registry URLs, the cache folder, a server without a registry', () => {
  it('parses registry://<id>@<ref> and names what is wrong otherwise', () => {
    assert.deepEqual(parseRegistryUrl('registry://tiny-gpt2@stable'), { id: 'tiny-gpt2', ref: 'stable' });
    assert.deepEqual(parseRegistryUrl('registry://m@1.2.0'), { id: 'm', ref: '1.2.0' });
    assert.equal(isRegistryUrl('registry://m@1'), true);
    assert.equal(isRegistryUrl('models/tiny-gpt2'), false);
    const refused = (url: string, why: RegExp): void =>
      assert.throws(
        () => parseRegistryUrl(url),
        (err: unknown) => err instanceof StartupError && err.reason === 'config' && why.test(err.message),
        url,
      );
    refused('registry://tiny-gpt2', /no version or alias/);
    refused('registry://bad.id@1', /model id 'bad\.id'/);
    refused('registry://m@', /version or alias must match/);
    refused('registry://m@a..b', /must not start or end with '\.' nor contain '\.\.'/);
    refused('http://m@1', /does not start with registry:\/\//);
  });

  it('a server without the registry answers: not found, never a fall-back to the cache', async () => {
    const bare = await NatsServer.start({ jetstream: true });
    const nc = await connectNats({ servers: bare.url });
    const work = tempDir('bare');
    try {
      await assert.rejects(
        resolveModel({ nc, url: { id: 'm', ref: 'stable' }, cacheDir: work, timeoutMs: 5_000 }),
        (err: unknown) => {
          assert.ok(err instanceof ModelNotFoundError, String(err));
          assert.match(err.message, /the model registry does not exist on this NATS server/);
          return true;
        },
      );
    } finally {
      await nc.close();
      await bare.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('puts the cache in $SWITCHYARD_MODEL_CACHE, else the XDG cache home, else ~/.cache', () => {
    assert.equal(
      defaultModelCacheDir({ SWITCHYARD_MODEL_CACHE: '/srv/models', XDG_CACHE_HOME: '/x' }),
      '/srv/models',
    );
    assert.equal(defaultModelCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/switchyard/models');
    assert.equal(defaultModelCacheDir({}), join(homedir(), '.cache', 'switchyard', 'models'));
  });
});

describe('resolveModel', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let work: string;
  let cacheDir: string;

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connectNats({ servers: server.url });
    work = tempDir('source');
    cacheDir = join(work, 'cache');
    const registry = await Registry.open(nc, { create: true });
    await registry.push(modelFolder(work, 'z1', { id: 'zeta', version: '1' }));
    await registry.push(modelFolder(work, 'z2', { id: 'zeta', version: '2' }));
    await registry.alias('zeta', 'stable', '1', { by: 'test', reason: 'start' });
  });

  after(async () => {
    await nc?.close();
    await server?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it('online: resolves an alias, fetches the version and records the ref', async () => {
    const got = await resolveModel({ nc, url: { id: 'zeta', ref: 'stable' }, cacheDir, timeoutMs: 5_000 });
    assert.equal(got.fromCache, false);
    assert.equal(got.version, '1');
    assert.equal(got.dir, join(cacheDir, got.digest));
    assert.ok(existsSync(join(got.dir, 'onnx', 'model.onnx')));
    const ref = JSON.parse(readFileSync(join(cacheDir, 'refs', 'zeta', 'stable.json'), 'utf8')) as unknown;
    assert.deepEqual(ref, { version: '1', digest: got.digest });
  });

  it('online: a ref the registry lacks is refused, not looked up in the cache', async () => {
    await assert.rejects(
      resolveModel({ nc, url: { id: 'zeta', ref: 'canary' }, cacheDir, timeoutMs: 5_000 }),
      ModelNotFoundError,
    );
  });

  it('with the registry unreachable: the recorded ref and its verified copy; nothing cached is a clear error', async () => {
    const online = await resolveModel({ nc, url: { id: 'zeta', ref: 'stable' }, cacheDir, timeoutMs: 5_000 });
    await server.stop();
    const offline = await resolveModel({ nc, url: { id: 'zeta', ref: 'stable' }, cacheDir, timeoutMs: 300 });
    assert.equal(offline.fromCache, true);
    assert.equal(offline.version, '1');
    assert.equal(offline.digest, online.digest);
    assert.equal(offline.dir, online.dir);
    const noConnection = await resolveModel({ url: { id: 'zeta', ref: 'stable' }, cacheDir });
    assert.equal(noConnection.fromCache, true);
    await assert.rejects(
      resolveModel({ nc, url: { id: 'zeta', ref: '2' }, cacheDir, timeoutMs: 300 }),
      (err: unknown) => {
        assert.ok(err instanceof RegistryError, String(err));
        assert.equal(err.reason, 'unreachable');
        assert.match(err.message, /registry:\/\/zeta@2: the model registry is unreachable/);
        assert.match(err.message, /nothing is cached for that ref/);
        return true;
      },
    );
  });
});
