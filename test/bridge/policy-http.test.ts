/**
 * The policies wired into real bridges, over HTTP: two bridges share one key's rpm through the
 * KV bucket (together they let exactly rpm requests through, the next is 429 with Retry-After),
 * a missing or wrong key is 401 with an OpenAI-style body, and a repeated greedy request is
 * answered from the response cache on either bridge.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAuthenticator } from '../../src/bridge/auth.ts';
import { responseCacheSource } from '../../src/bridge/cache.ts';
import type { BridgeOptions } from '../../src/bridge/options.ts';
import { rateLimiterSource } from '../../src/bridge/rate-limit.ts';
import { scopedRequestId } from '../../src/bridge/tenancy.ts';
import { HEADERS } from '../../src/cluster/headers.ts';
import { REQUEST_ID_PATTERN } from '../../src/cluster/messages/stream.ts';
import { GENERATE_SUBJECT } from '../../src/cluster/subjects.ts';
import { MODEL, post, startCluster, waitFor, type Answer, type TestCluster } from './harness.ts';

const LIMITED_KEY = 'sy-limited-key-0123456789abcdefghij';
const FREE_KEY = 'sy-unlimited-key-0123456789abcdefgh';
const OTHER_KEY = 'sy-another-tenant-key-0123456789abcd';
const RPM = 3;

function policies(): BridgeOptions {
  const auth = createAuthenticator({
    keys: [
      { id: 'limited', key: LIMITED_KEY, rpm: RPM },
      { id: 'free', key: FREE_KEY },
      { id: 'other', key: OTHER_KEY },
    ],
  });
  return {
    policies: {
      auth,
      limiter: rateLimiterSource(auth, { bucket: 'sy_http_limits' }),
      cache: responseCacheSource({ enabled: true, bucket: 'sy_http_cache' }),
    },
  };
}

function errorOf(answer: Answer): { message: string; code: string } {
  return (JSON.parse(answer.text) as { error: { message: string; code: string } }).error;
}

describe('bridge policies over HTTP', () => {
  let cluster: TestCluster;
  let urls: string[];

  const complete = (
    bridge: number,
    key: string | undefined,
    body: object,
    extra: Record<string, string> = {},
  ): Promise<Answer> =>
    post(`${urls[bridge]}/v1/completions`, body, {
      'content-type': 'application/json',
      ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
      ...extra,
    });
  const textOf = (a: Answer): string =>
    (JSON.parse(a.text) as { choices: Array<{ text: string }> }).choices[0]!.text;

  before(async () => {
    cluster = await startCluster([{ id: 'r1' }], policies());
    await cluster.bridge(policies());
    urls = cluster.bridges.map((b) => b.url);
    // The cache keys a request by the version the bridge sees served: wait until it sees one.
    await waitFor('the second bridge to see the replica', async () => (await fetch(`${urls[1]}/readyz`)).ok);
  });

  after(async () => {
    await cluster?.close();
  });

  it('answers a missing or unknown key with 401 and says what is wrong', async () => {
    const body = { model: MODEL, prompt: 'hi', max_tokens: 2 };
    const missing = await complete(0, undefined, body);
    assert.equal(missing.status, 401);
    assert.equal(errorOf(missing).code, 'unauthorized');
    assert.match(errorOf(missing).message, /missing API key/);
    const wrong = await complete(1, 'sy-not-a-configured-key-000', body);
    assert.equal(wrong.status, 401);
    assert.match(errorOf(wrong).message, /invalid API key/);
    assert.ok(!wrong.text.includes('sy-not-a-configured-key-000'));
    assert.equal((await complete(0, FREE_KEY, body)).status, 200);
  });

  it('two bridges share one rpm: exactly rpm requests pass, the next is 429 with Retry-After', async () => {
    // A fresh window, so that the count cannot straddle a minute boundary mid-test.
    const intoWindow = Date.now() % 60_000;
    if (intoWindow > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoWindow + 100));
    const body = { model: MODEL, prompt: 'count me', max_tokens: 2 };
    const statuses: number[] = [];
    let refused: Answer | undefined;
    for (let i = 0; i < RPM + 2; i++) {
      const answer = await complete(i % 2, LIMITED_KEY, body);
      statuses.push(answer.status);
      if (answer.status === 429) refused ??= answer;
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    assert.ok(refused !== undefined);
    assert.equal(errorOf(refused).code, 'rate_limited');
    assert.match(errorOf(refused).message, /3 requests per minute used/);
    const retryAfter = Number(refused.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${String(refused.headers['retry-after'])}`);
    // Another key is not affected.
    assert.equal((await complete(1, FREE_KEY, body)).status, 200);
  });

  it('answers a repeated greedy request from the cache, on either bridge', async () => {
    const body = { model: MODEL, prompt: 'cache me', max_tokens: 12, temperature: 0 };
    const first = await complete(0, FREE_KEY, body);
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-switchyard-cache'], 'miss');
    const second = await complete(1, FREE_KEY, body);
    assert.equal(second.status, 200);
    assert.equal(second.headers['x-switchyard-cache'], 'hit');
    const text = (a: Answer): string =>
      (JSON.parse(a.text) as { choices: Array<{ text: string }> }).choices[0]!.text;
    assert.equal(text(second), text(first));
    const sampled = await complete(0, FREE_KEY, { ...body, temperature: 0.9 });
    assert.equal(sampled.status, 200);
    assert.notEqual(sampled.headers['x-switchyard-cache'], 'hit');
  });

  it("scopes x-request-id to the key: two keys' same id are two cluster requests, each echoed", async () => {
    const seen: string[] = [];
    const sub = cluster.nc.subscribe(GENERATE_SUBJECT, {
      callback: (_err, msg) => void seen.push(msg.headers?.get(HEADERS.requestId) ?? ''),
    });
    await cluster.nc.flush();
    try {
      const body = { model: MODEL, prompt: 'same id', max_tokens: 16, temperature: 0.7, seed: 3 };
      const id = { 'x-request-id': 'shared-id-1' };
      const [mine, theirs] = await Promise.all([
        complete(0, FREE_KEY, body, id),
        complete(0, OTHER_KEY, { ...body, prompt: 'same id, other tenant' }, id),
      ]);
      assert.equal(mine.status, 200, mine.text);
      assert.equal(theirs.status, 200, theirs.text);
      assert.equal(mine.headers['x-request-id'], 'shared-id-1');
      assert.equal(theirs.headers['x-request-id'], 'shared-id-1');
      await waitFor('both on the front door', () => seen.length >= 2);
      assert.deepEqual([...seen].sort(), ['free:shared-id-1', 'other:shared-id-1']);
    } finally {
      sub.unsubscribe();
    }
    // A caller's id of the full 128 characters still makes a valid cluster id, distinct per id.
    const long = scopedRequestId('other', 'a'.repeat(128));
    assert.match(long, REQUEST_ID_PATTERN);
    assert.notEqual(long, scopedRequestId('other', `${'a'.repeat(127)}b`));
    assert.ok(long.startsWith('other::'));
  });

  it('keeps the response cache per key: one key never hits what another asked', async () => {
    const body = { model: MODEL, prompt: 'my tenant only', max_tokens: 8, temperature: 0 };
    assert.equal((await complete(0, FREE_KEY, body)).headers['x-switchyard-cache'], 'miss');
    assert.equal((await complete(1, FREE_KEY, body)).headers['x-switchyard-cache'], 'hit');
    const other = await complete(0, OTHER_KEY, body);
    assert.equal(other.status, 200);
    assert.equal(other.headers['x-switchyard-cache'], 'miss', 'another key does not see the entry');
  });

  it('computes identical concurrent cacheable requests once on a bridge (single flight)', async () => {
    const body = { model: MODEL, prompt: 'asked twice at once', max_tokens: 24, temperature: 0 };
    const answers = await Promise.all([complete(0, FREE_KEY, body), complete(0, FREE_KEY, body)]);
    for (const a of answers) assert.equal(a.status, 200, a.text);
    assert.deepEqual(answers.map((a) => a.headers['x-switchyard-cache']).sort(), ['hit', 'miss']);
    assert.equal(textOf(answers[0]), textOf(answers[1]));
  });
});
