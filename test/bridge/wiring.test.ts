/**
 * How the bridge uses its policies, with small honest fakes behind the policy interfaces (the
 * real key store, shared limiter and KV cache have their own tests): authentication on every
 * `/v1` route, admission before sending and release with the real token count, and the cache
 * (miss, store, hit as JSON and as a stream, failures that never fail a request).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bridge } from '../../src/bridge/bridge.ts';
import type { PolicyContext } from '../../src/bridge/options.ts';
import type {
  Admission,
  Authenticator,
  CachedGeneration,
  Caller,
  RateLimiter,
  ResponseCache,
} from '../../src/bridge/policy.ts';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { RateLimitedError, UnauthorizedError } from '../../src/errors/errors.ts';
import { injectFault } from '../helpers/cluster.ts';
import { MODEL, post, readSseEvents, sseEvents, startCluster, waitFor, type TestCluster } from './harness.ts';

const KEYS: Record<string, Caller> = { good: { keyId: 'good' }, limited: { keyId: 'limited' } };

const fakeAuth: Authenticator = {
  enabled: true,
  authenticate(authorization) {
    const key = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
    const caller = key === undefined ? undefined : KEYS[key];
    if (caller === undefined) throw new UnauthorizedError('a valid API key is required');
    return caller;
  },
};

class FakeLimiter implements RateLimiter {
  readonly admitted: Array<{ keyId: string; estimate: number; requests: number | undefined }> = [];
  readonly released: number[] = [];
  closed = false;
  admit(caller: Caller, estimate: number, requests?: number): Promise<Admission> {
    if (caller.keyId === 'limited')
      return Promise.reject(new RateLimitedError('requests per minute spent', 2_500));
    this.admitted.push({ keyId: caller.keyId, estimate, requests });
    return Promise.resolve({ release: (tokens) => void this.released.push(tokens) });
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

class MemoryCache implements ResponseCache {
  readonly enabled = true;
  readonly entries = new Map<string, CachedGeneration>();
  readonly versions: string[] = [];
  failGet = false;
  failPut = false;
  keyOf(req: GenerateRequest, version: string): string | undefined {
    if ((req.temperature ?? 1) > 0 && req.seed === undefined) return undefined;
    this.versions.push(version);
    return JSON.stringify([version, req]);
  }
  get(key: string): Promise<CachedGeneration | undefined> {
    if (this.failGet) return Promise.reject(new Error('the KV bucket is down'));
    return Promise.resolve(this.entries.get(key));
  }
  put(key: string, value: CachedGeneration): Promise<void> {
    if (this.failPut) return Promise.reject(new Error('the KV bucket is down'));
    this.entries.set(key, value);
    return Promise.resolve();
  }
}

const AUTH = { 'content-type': 'application/json', authorization: 'Bearer good' };
const GREEDY = { model: MODEL, prompt: 'Cache me', max_tokens: 8, temperature: 0 };

describe('the bridge with its policies', () => {
  let cluster: TestCluster;
  let bridge: Bridge;
  const limiter = new FakeLimiter();
  const cache = new MemoryCache();
  let factoryCtx: PolicyContext | undefined;

  before(async () => {
    cluster = await startCluster();
    bridge = await cluster.bridge({
      policies: {
        auth: fakeAuth,
        limiter: (ctx) => {
          factoryCtx = ctx;
          return limiter;
        },
        cache,
      },
    });
    await waitFor('the bridge to see the replica', async () => (await fetch(`${bridge.url}/readyz`)).ok);
  });

  after(async () => {
    await cluster?.close();
  });

  it('builds a policy given as a factory with the bridge connection, and closes it on stop', () => {
    assert.equal(factoryCtx?.nc.isClosed(), false);
    assert.equal(limiter.closed, false);
  });

  it('401 with WWW-Authenticate on every /v1 route without a valid key; health routes need none', async () => {
    for (const [method, path] of [
      ['POST', '/v1/completions'],
      ['POST', '/v1/chat/completions'],
      ['GET', '/v1/models'],
      ['GET', '/v1/cluster'],
    ] as const) {
      const res = await fetch(`${bridge.url}${path}`, {
        method,
        headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' },
        body: method === 'POST' ? JSON.stringify(GREEDY) : undefined,
      });
      assert.equal(res.status, 401, path);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      const body = (await res.json()) as { error: { code: string; type: string } };
      assert.deepEqual([body.error.code, body.error.type], ['unauthorized', 'authentication_error']);
    }
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      assert.equal((await fetch(`${bridge.url}${path}`)).status, 200, path);
    }
    assert.equal((await fetch(`${bridge.url}/v1/models`, { headers: AUTH })).status, 200);
  });

  it('admits with an estimate before sending and releases the real tokens after', async () => {
    const before = limiter.released.length;
    const res = await post(
      `${bridge.url}/v1/completions`,
      { ...GREEDY, prompt: 'x'.repeat(40), seed: 7, temperature: 1 },
      AUTH,
    );
    assert.equal(res.status, 200, res.text);
    const usage = (JSON.parse(res.text) as { usage: { total_tokens: number } }).usage;
    assert.deepEqual(limiter.admitted.at(-1), { keyId: 'good', estimate: 40 / 4 + 8, requests: 1 });
    await waitFor('the release', () => limiter.released.length > before);
    assert.equal(limiter.released.at(-1), usage.total_tokens);
  });

  it('429 rate_limited with Retry-After in whole seconds (rounded up)', async () => {
    const res = await post(`${bridge.url}/v1/completions`, GREEDY, {
      ...AUTH,
      authorization: 'Bearer limited',
    });
    assert.equal(res.status, 429);
    assert.equal(res.headers['retry-after'], '3');
    const body = JSON.parse(res.text) as { error: { code: string; type: string } };
    assert.deepEqual([body.error.code, body.error.type], ['rate_limited', 'rate_limit_error']);
  });

  it('caches a deterministic generation: miss and store, then a hit as JSON and as a stream', async () => {
    const first = await post(`${bridge.url}/v1/completions`, GREEDY, AUTH);
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-switchyard-cache'], 'miss');
    await waitFor('the store', () => cache.entries.size > 0);
    assert.deepEqual(cache.versions.at(-1), '1', 'keyed by the single live version');
    const released = limiter.released.length;
    const second = await post(`${bridge.url}/v1/completions`, GREEDY, AUTH);
    assert.equal(second.headers['x-switchyard-cache'], 'hit');
    const a = JSON.parse(first.text) as { choices: unknown[]; usage: unknown };
    const b = JSON.parse(second.text) as { choices: unknown[]; usage: unknown };
    assert.deepEqual(b.choices, a.choices);
    assert.deepEqual(b.usage, a.usage);
    await waitFor('the release', () => limiter.released.length > released);
    assert.equal(limiter.released.at(-1), 0, 'a hit costs no tokens');

    const streamed = await post(`${bridge.url}/v1/completions`, { ...GREEDY, stream: true }, AUTH);
    assert.equal(streamed.headers['x-switchyard-cache'], 'hit');
    const events = sseEvents(streamed.text) as Array<{ choices: Array<{ text: string }> } | string>;
    assert.equal(events.at(-1), '[DONE]');
    const text = events
      .slice(0, -1)
      .map((e) => (e as { choices: Array<{ text: string }> }).choices[0]!.text)
      .join('');
    assert.equal(text, (a.choices[0] as { text: string }).text);
    const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
    assert.match(metrics, /switchyard_cache_requests_total\{result="hit"[^}]*\} 2/);
  });

  it('does not cache a sampled request without a seed', async () => {
    const res = await post(`${bridge.url}/v1/completions`, { ...GREEDY, temperature: 0.8 }, AUTH);
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-switchyard-cache'], undefined);
  });

  it('serves the request when the cache fails', async () => {
    cache.failGet = true;
    cache.failPut = true;
    try {
      const res = await post(`${bridge.url}/v1/completions`, { ...GREEDY, prompt: 'Cache down' }, AUTH);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers['x-switchyard-cache'], 'miss');
      const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
      assert.match(metrics, /switchyard_cache_requests_total\{result="error"[^}]*\} [1-9]/);
    } finally {
      cache.failGet = false;
      cache.failPut = false;
    }
  });

  it('counts each prompt of a prompt array against requests per minute', async () => {
    const res = await post(
      `${bridge.url}/v1/completions`,
      { model: MODEL, prompt: ['one', 'two', 'three'], max_tokens: 2 },
      AUTH,
    );
    assert.equal(res.status, 200, res.text);
    assert.equal(limiter.admitted.at(-1)?.requests, 3);
  });

  it('charges the tokens delivered to a client that disconnects mid-stream', async () => {
    await injectFault(cluster.nc, 'r1', { step_delay_ms: 20 });
    try {
      const before = limiter.released.length;
      const abort = new AbortController();
      const res = await fetch(`${bridge.url}/v1/completions`, {
        method: 'POST',
        headers: AUTH,
        body: JSON.stringify({
          ...GREEDY,
          prompt: 'x'.repeat(40),
          max_tokens: 300,
          ignore_eos: true,
          stream: true,
        }),
        signal: abort.signal,
      });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      await readSseEvents(reader, 5);
      abort.abort();
      await waitFor('the release', () => limiter.released.length > before);
      const charged = limiter.released.at(-1) ?? 0;
      // At least the 5 tokens it saw and the prompt's estimate (40 / 4); far from all 300.
      assert.ok(charged >= 5 + 10 && charged < 300, `charged ${charged}`);
    } finally {
      await injectFault(cluster.nc, 'r1', { step_delay_ms: 0 });
    }
  });

  it('closes its policies when it stops', async () => {
    await bridge.stop();
    assert.equal(limiter.closed, true);
  });
});
