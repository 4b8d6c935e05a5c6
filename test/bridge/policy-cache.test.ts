/**
 * The response cache: only deterministic requests get a key, every input (the model version
 * included) changes the key, values round-trip through a real KV bucket with a bucket TTL, and
 * no store failure ever reaches the request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  DEFAULT_CACHE_TTL_MS,
  KvResponseCache,
  canonicalJson,
  compileResponseCacheOptions,
  openResponseCache,
  responseCacheKey,
  responseCacheSource,
} from '../../src/bridge/cache.ts';
import type { CachedGeneration } from '../../src/bridge/policy.ts';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { StartupError } from '../../src/errors/errors.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const GREEDY: GenerateRequest = {
  model: 'tiny-gpt2',
  prompt: 'Once upon a time',
  maxTokens: 16,
  temperature: 0,
};
const GENERATION: CachedGeneration = {
  text: ' there was a cache',
  tokenIds: [612, 373, 257, 12940],
  finishReason: 'length',
  promptTokens: 4,
  completionTokens: 4,
};

function quietLog(warnings: string[] = []): { warn: (o: unknown, m?: string) => void } {
  return { warn: (_o: unknown, m?: string) => void warnings.push(m ?? '') };
}

describe('response cache keys', () => {
  it('are given to greedy requests and to sampled requests with a seed only', () => {
    assert.match(responseCacheKey(GREEDY, '1.0.0', 'acme') ?? '', /^[0-9a-f]{64}$/);
    assert.match(
      responseCacheKey({ ...GREEDY, temperature: 0.8, seed: 7 }, '1.0.0', 'acme') ?? '',
      /^[0-9a-f]{64}$/,
    );
    assert.match(
      responseCacheKey({ ...GREEDY, temperature: undefined, seed: 7 }, '1.0.0', 'acme') ?? '',
      /^[0-9a-f]{64}$/,
    );
    assert.equal(responseCacheKey({ ...GREEDY, temperature: 0.8 }, '1.0.0', 'acme'), undefined);
    assert.equal(
      responseCacheKey({ model: 'tiny-gpt2', prompt: 'default temperature is 1' }, '1.0.0', 'acme'),
      undefined,
    );
  });

  it('never cross model versions', () => {
    assert.notEqual(responseCacheKey(GREEDY, '1.0.0', 'acme'), responseCacheKey(GREEDY, '1.0.1', 'acme'));
    // The version pinned in the request does not matter, the version that serves it does.
    assert.equal(
      responseCacheKey({ ...GREEDY, version: '9' }, '1.0.0', 'acme'),
      responseCacheKey(GREEDY, '1.0.0', 'acme'),
    );
  });

  it('never cross tenants: the same request of another API key has another key', () => {
    assert.notEqual(responseCacheKey(GREEDY, '1.0.0', 'acme'), responseCacheKey(GREEDY, '1.0.0', 'other'));
  });

  it('depend on every input that can change the output, and on nothing else', () => {
    const base = responseCacheKey(GREEDY, 'v1', 'acme');
    const variants: GenerateRequest[] = [
      { ...GREEDY, model: 'other-model' },
      { ...GREEDY, prompt: 'Once upon a time.' },
      { model: 'tiny-gpt2', promptTokenIds: [1, 2, 3], maxTokens: 16, temperature: 0 },
      {
        model: 'tiny-gpt2',
        messages: [{ role: 'user', content: 'Once upon a time' }],
        maxTokens: 16,
        temperature: 0,
      },
      { ...GREEDY, maxTokens: 17 },
      { ...GREEDY, topP: 0.9 },
      { ...GREEDY, topK: 5 },
      { ...GREEDY, presencePenalty: 0.5 },
      { ...GREEDY, frequencyPenalty: 0.5 },
      { ...GREEDY, seed: 1 },
      { ...GREEDY, stop: ['\n'] },
      { ...GREEDY, ignoreEos: true },
      { ...GREEDY, resumeTokenIds: [5] },
    ];
    const keys = new Set(variants.map((v) => responseCacheKey(v, 'v1', 'acme')));
    assert.equal(keys.size, variants.length);
    assert.ok(!keys.has(base));
    // Field order in the request object does not matter.
    const reordered: GenerateRequest = {
      temperature: 0,
      maxTokens: 16,
      prompt: 'Once upon a time',
      model: 'tiny-gpt2',
    };
    assert.equal(responseCacheKey(reordered, 'v1', 'acme'), base);
    assert.equal(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), '{"a":{"c":null,"d":[2,1]},"b":1}');
  });
});

describe('response cache on NATS KV', () => {
  let server: NatsServer;
  let nc: NatsConnection;

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connectNats({ servers: server.url });
  });

  after(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('is off unless enabled', () => {
    assert.equal(responseCacheSource({}), undefined);
    assert.equal(typeof responseCacheSource({ enabled: true }), 'function');
  });

  it('creates its bucket with a bucket TTL and round-trips a generation', async () => {
    const cache = await openResponseCache(nc, compileResponseCacheOptions({ enabled: true }), quietLog());
    const status = await (await new Kvm(nc).open('sy_response_cache')).status();
    assert.equal(status.ttl, DEFAULT_CACHE_TTL_MS);
    assert.equal(status.history, 1);
    assert.equal(status.maxValueSize, cache.maxValueBytes);
    assert.equal(cache.enabled, true);
    const key = cache.keyOf(GREEDY, '1.0.0', 'acme');
    assert.ok(key !== undefined);
    assert.equal(await cache.get(key), undefined);
    await cache.put(key, GENERATION);
    assert.deepEqual(await cache.get(key), GENERATION);
    assert.equal(
      await cache.get(cache.keyOf(GREEDY, '2.0.0', 'acme') ?? ''),
      undefined,
      'another version misses',
    );
    assert.deepEqual(cache.stats, { hits: 1, misses: 2, stores: 1, skipped: 0, errors: 0 });
  });

  it('a second bridge on the same bucket sees the first one’s entries', async () => {
    const nc2 = await connectNats({ servers: server.url });
    try {
      const opts = compileResponseCacheOptions({ enabled: true, bucket: 'sy_cache_shared', ttlMs: 60_000 });
      const a = await openResponseCache(nc, opts, quietLog());
      const b = await openResponseCache(nc2, opts, quietLog());
      const key = a.keyOf({ ...GREEDY, temperature: 0.9, seed: 42 }, 'v', 'acme') ?? '';
      await a.put(key, GENERATION);
      assert.deepEqual(await b.get(key), GENERATION);
      assert.equal((await (await new Kvm(nc).open('sy_cache_shared')).status()).ttl, 60_000);
    } finally {
      await nc2.close();
    }
  });

  it('skips values larger than the largest value', async () => {
    const cache = await openResponseCache(
      nc,
      compileResponseCacheOptions({ enabled: true, bucket: 'sy_cache_small', maxValueBytes: 1024 }),
      quietLog(),
    );
    const key = cache.keyOf(GREEDY, 'v', 'acme') ?? '';
    await cache.put(key, { ...GENERATION, text: 'x'.repeat(2000) });
    assert.equal(cache.stats.skipped, 1);
    assert.equal(await cache.get(key), undefined);
    await cache.put(key, GENERATION);
    assert.deepEqual(await cache.get(key), GENERATION);
  });

  it('answers a store failure or a foreign value as a miss, never as an error', async () => {
    const opts = compileResponseCacheOptions({ enabled: true, bucket: 'sy_cache_gone', storeRetryMs: 0 });
    const warnings: string[] = [];
    const cache = await openResponseCache(nc, opts, quietLog(warnings));
    const kv = await new Kvm(nc).open('sy_cache_gone');
    await kv.put('foreign', '{"not":"a generation"}');
    assert.equal(await cache.get('foreign'), undefined);
    assert.equal(cache.stats.errors, 1);
    await (await jetstreamManager(nc)).streams.delete('KV_sy_cache_gone');
    const key = cache.keyOf(GREEDY, 'v', 'acme') ?? '';
    await cache.put(key, GENERATION);
    assert.equal(await cache.get(key), undefined);
    assert.equal(cache.stats.errors, 3);
    assert.ok(warnings.every((w) => /response cache (read|write) failed/.test(w)));
  });

  it('skips the store for a while after a failure', async () => {
    let now = 1_000;
    // A deleted bucket's reads time out like an unreachable one's: keep the timeout short.
    const kv = await new Kvm(jetstream(nc, { timeout: 200 })).create('sy_cache_down', {
      history: 1,
      ttl: 60_000,
    });
    await (await jetstreamManager(nc)).streams.delete('KV_sy_cache_down');
    const opts = compileResponseCacheOptions({ enabled: true, bucket: 'sy_cache_down', storeRetryMs: 5_000 });
    const cache = new KvResponseCache(kv, opts, 1024, quietLog(), () => now);
    assert.equal(await cache.get('a'), undefined);
    assert.equal(await cache.get('a'), undefined);
    await cache.put('a', GENERATION);
    assert.equal(cache.stats.errors, 1, 'only the first call went to the store');
    now += 5_000;
    assert.equal(await cache.get('a'), undefined);
    assert.equal(cache.stats.errors, 2);
  });

  it('fails at startup without JetStream, saying how to fix it', async () => {
    const plain = await NatsServer.start();
    const nc2 = await connectNats({ servers: plain.url });
    try {
      await assert.rejects(
        openResponseCache(nc2, compileResponseCacheOptions({ enabled: true }), quietLog()),
        (err: unknown) => {
          assert.ok(err instanceof StartupError, String(err));
          assert.match(err.message, /response cache needs the NATS KV bucket.*Enable JetStream/);
          return true;
        },
      );
    } finally {
      await nc2.close();
      await plain.stop();
    }
  });
});
