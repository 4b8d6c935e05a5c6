/**
 * `POST /v1/feedback` and `GET /v1/collector/stats` on real bridges over a real nats-server with
 * JetStream: feedback is answered 202 only once it is in the SY_FEEDBACK stream (read back here)
 * under the request id of the completion it rates (response id and bare id forms, choice index,
 * hashed scopes), each field is validated, another key's response id is 403, the request rate
 * limit applies, and a bridge whose NATS has no feedback stream or no JetStream answers 503. The
 * stats endpoint relays a (fake) collector's answer and is 503 without one.
 *
 * Then with a router and a replica: `metadata` and `Sy-Key-Id` reach the front door, response ids
 * carry the cluster request id, choice i of a multi-prompt request is `<id>.<i>`, feedback with a
 * real response id joins its request's id, and metadata leaves the response cache key alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { createAuthenticator } from '../../src/bridge/auth.ts';
import { startBridge, type Bridge } from '../../src/bridge/bridge.ts';
import { responseCacheSource } from '../../src/bridge/cache.ts';
import type { BridgeOptions } from '../../src/bridge/options.ts';
import { rateLimiterSource } from '../../src/bridge/rate-limit.ts';
import { scopedRequestId } from '../../src/bridge/tenancy.ts';
import { ensureCaptureStreams } from '../../src/capture/streams.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { HEADERS } from '../../src/cluster/headers.ts';
import { decodeFeedback, type FeedbackEvent } from '../../src/cluster/messages/capture.ts';
import { decodeGenerateRequest } from '../../src/cluster/messages/generate.ts';
import { FEEDBACK_STREAM, GENERATE_SUBJECT, collectorSubject } from '../../src/cluster/subjects.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { MODEL, post, startCluster, waitFor, type Answer, type TestCluster } from './harness.ts';

const KEY_A = 'sy-feedback-key-a-0123456789abcdefgh';
const KEY_B = 'sy-feedback-key-b-0123456789abcdefgh';
const LIMITED_KEY = 'sy-feedback-limited-0123456789abcdef';
const RPM = 2;

function keyed(extra: Parameters<typeof createAuthenticator>[0] = {}): BridgeOptions {
  const auth = createAuthenticator({
    keys: [
      { id: 'ka', key: KEY_A },
      { id: 'kb', key: KEY_B },
      { id: 'limited', key: LIMITED_KEY, rpm: RPM },
    ],
    ...extra,
  });
  return { policies: { auth, limiter: rateLimiterSource(auth, { bucket: 'sy_feedback_limits' }) } };
}

/** Every feedback item in the stream, oldest first. */
async function storedFeedback(nc: NatsConnection): Promise<FeedbackEvent[]> {
  const jsm = await jetstreamManager(nc);
  const { state } = await jsm.streams.info(FEEDBACK_STREAM);
  const items: FeedbackEvent[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const msg = await jsm.streams.getMessage(FEEDBACK_STREAM, { seq });
    if (msg !== null) items.push(decodeFeedback(msg.data));
  }
  return items;
}

function errorOf(answer: Answer): { message: string; code: string } {
  return (JSON.parse(answer.text) as { error: { message: string; code: string } }).error;
}

function send(url: string, path: string, key: string | undefined, body: unknown): Promise<Answer> {
  return post(`${url}${path}`, body, {
    'content-type': 'application/json',
    ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
  });
}

describe('POST /v1/feedback', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let bridge: Bridge;
  const feedback = (key: string | undefined, body: unknown): Promise<Answer> =>
    send(bridge.url, '/v1/feedback', key, body);
  /** The item the last accepted feedback stored. */
  const last = async (): Promise<FeedbackEvent> => (await storedFeedback(nc)).at(-1)!;

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connectNats({ servers: server.url });
    await ensureCaptureStreams(nc, { storage: 'memory' });
    bridge = await startBridge({ port: 0, nats: { servers: server.url }, ...keyed() });
  });

  after(async () => {
    await bridge?.stop();
    await nc?.close();
    await server?.stop();
  });

  it('stores feedback on a response id: 202 once it is in the stream, thumbs as 1/0, the key recorded', async () => {
    const answer = await feedback(KEY_A, {
      id: 'chatcmpl-ka:conv-1',
      rating: 'up',
      tags: ['helpful'],
      comment: 'exactly right',
    });
    assert.equal(answer.status, 202, answer.text);
    assert.deepEqual(JSON.parse(answer.text), {
      id: 'chatcmpl-ka:conv-1',
      request_id: 'ka:conv-1',
      status: 'stored',
    });
    const item = await last();
    assert.equal(item.request_id, 'ka:conv-1');
    assert.equal(item.rating, 1);
    assert.equal(item.thumbs, 'up');
    assert.equal(item.api_key_id, 'ka');
    assert.deepEqual(item.tags, ['helpful']);
    assert.equal(item.comment, 'exactly right');

    assert.equal((await feedback(KEY_A, { id: 'cmpl-ka:conv-2', rating: 'down' })).status, 202);
    assert.deepEqual([(await last()).request_id, (await last()).rating], ['ka:conv-2', 0]);
  });

  it('scopes a bare request id to the caller and names choice `index`', async () => {
    const answer = await feedback(KEY_B, { id: 'my-own-id', rating: 0.75, index: 2, correction: 'fixed' });
    assert.equal(answer.status, 202, answer.text);
    const item = await last();
    assert.equal(item.request_id, 'kb:my-own-id.2');
    assert.equal(item.rating, 0.75);
    assert.equal(item.thumbs, undefined);
    assert.equal(item.correction, 'fixed');
    // Choice 0 is the id itself.
    assert.equal((await feedback(KEY_B, { id: 'my-own-id', rating: 1, index: 0 })).status, 202);
    assert.equal((await last()).request_id, 'kb:my-own-id');
  });

  it('handles hashed scopes like plain ones', async () => {
    const long = 'x'.repeat(128);
    const hashed = scopedRequestId('ka', long);
    assert.match(hashed, /^ka::/);
    assert.equal((await feedback(KEY_A, { id: long, rating: 'up' })).status, 202);
    assert.equal((await last()).request_id, hashed);
    assert.equal((await feedback(KEY_A, { id: `cmpl-${hashed}`, rating: 'up' })).status, 202);
    assert.equal((await last()).request_id, hashed);
    const theirs = await feedback(KEY_B, { id: `cmpl-${hashed}`, rating: 'up' });
    assert.equal(theirs.status, 403);
  });

  it("refuses feedback on another key's response id with 403, storing nothing", async () => {
    const before = (await storedFeedback(nc)).length;
    const answer = await feedback(KEY_B, { id: 'chatcmpl-ka:conv-1', rating: 'down' });
    assert.equal(answer.status, 403);
    assert.equal(errorOf(answer).code, 'forbidden');
    assert.equal(errorOf(answer).message, 'feedback on a request made with another API key');
    assert.equal((await storedFeedback(nc)).length, before);
  });

  it('needs an API key like the generation endpoints', async () => {
    const answer = await feedback(undefined, { id: 'x', rating: 'up' });
    assert.equal(answer.status, 401);
    assert.equal(errorOf(answer).code, 'unauthorized');
  });

  it('validates every field with a 400 that names it, storing nothing', async () => {
    const before = (await storedFeedback(nc)).length;
    const cases: Array<[unknown, RegExp]> = [
      [{ rating: 'up' }, /^id is required/],
      [{ id: 'has spaces', rating: 'up' }, /^id must be a response id .* or a request id/],
      [{ id: 7, rating: 'up' }, /^id must be/],
      [{ id: `cmpl-ka:${'y'.repeat(130)}`, rating: 'up' }, /^id must be/],
      [{ id: 'a', rating: 'up', ratng: 1 }, /^unknown field 'ratng' in the feedback; known: id, index/],
      [{ id: 'a' }, /^rating is required/],
      [{ id: 'a', rating: 'meh' }, /^rating must be 'up', 'down' or a number between 0 and 1, got "meh"/],
      [{ id: 'a', rating: 1.5 }, /^rating must be a number between 0 and 1, got 1.5/],
      [{ id: 'a', rating: 'up', index: -1 }, /^index must be an integer >= 0/],
      [{ id: 'a', rating: 'up', index: 'one' }, /^index must be an integer/],
      [{ id: 'a', rating: 'up', correction: 5 }, /^correction must be a string/],
      [{ id: 'a', rating: 'up', correction: 'c'.repeat(65_537) }, /^correction must be a string of at most/],
      [{ id: 'a', rating: 'up', tags: 'x' }, /^tags must be an array of at most 16 strings/],
      [{ id: 'a', rating: 'up', tags: ['ok', ''] }, /^tags\[1\] must be a string of 1 to 64/],
      [{ id: 'a', rating: 'up', comment: 'c'.repeat(4_097) }, /^comment must be a string of at most 4096/],
    ];
    for (const [body, message] of cases) {
      const answer = await feedback(KEY_A, body);
      assert.equal(answer.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${answer.text}`);
      assert.equal(errorOf(answer).code, 'invalid_request');
      assert.match(errorOf(answer).message, message);
    }
    const notJson = await post(`${bridge.url}/v1/feedback`, '{"id":', {
      'content-type': 'application/json',
      authorization: `Bearer ${KEY_A}`,
    });
    assert.equal(notJson.status, 400);
    assert.equal((await storedFeedback(nc)).length, before);
  });

  it("counts against the key's requests per minute", async () => {
    // A fresh window, so that the count cannot straddle a minute boundary mid-test.
    const intoWindow = Date.now() % 60_000;
    if (intoWindow > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoWindow + 100));
    const statuses: number[] = [];
    for (let i = 0; i < RPM + 1; i++) {
      statuses.push((await feedback(LIMITED_KEY, { id: `limited-${i}`, rating: 'up' })).status);
    }
    assert.deepEqual(statuses, [202, 202, 429]);
  });

  it('relays the stats a collector answers, and is 503 while none does', async () => {
    const none = await fetch(`${bridge.url}/v1/collector/stats`, {
      headers: { authorization: `Bearer ${KEY_A}` },
    });
    assert.equal(none.status, 503);
    assert.equal(none.headers.get('retry-after'), '1');
    assert.match(((await none.json()) as { error: { message: string } }).error.message, /no collector/);

    const stats = {
      versions: [
        {
          model: MODEL,
          version: '1',
          requests: 10,
          completed: 9,
          errors: { busy: 1 },
          error_rate: 0.1,
          latency_ms: {
            ttft: { p50: 12, p90: 20, p99: 30, count: 9 },
            tpot: { p50: 2, p90: 3, p99: 4, count: 9 },
            duration: { p50: 100, p90: 150, p99: 200, count: 9 },
          },
          tokens: { prompt: 50, completion: 90 },
          feedback: { count: 3, rating_mean: 0.67, thumbs_up: 2, thumbs_down: 1, corrections: 0 },
        },
      ],
    };
    const asked: string[] = [];
    const collector: Subscription = nc.subscribe(collectorSubject('stats'), {
      callback: (_err, msg: Msg) => {
        asked.push(msg.string());
        msg.respond(JSON.stringify(stats));
      },
    });
    await nc.flush();
    try {
      const answer = await fetch(`${bridge.url}/v1/collector/stats`, {
        headers: { authorization: `Bearer ${KEY_A}` },
      });
      assert.equal(answer.status, 200);
      assert.deepEqual(await answer.json(), stats);
      assert.deepEqual(asked, ['{}']);
      const anonymous = await fetch(`${bridge.url}/v1/collector/stats`);
      assert.equal(anonymous.status, 401);
    } finally {
      collector.unsubscribe();
    }
  });
});

describe('feedback that cannot be stored', () => {
  it('is 503 when the feedback stream does not exist', async () => {
    const server = await NatsServer.start({ jetstream: true });
    const bridge = await startBridge({ port: 0, nats: { servers: server.url } });
    try {
      const answer = await send(bridge.url, '/v1/feedback', undefined, { id: 'r', rating: 'up' });
      assert.equal(answer.status, 503);
      assert.equal(answer.headers['retry-after'], '1');
      assert.equal(errorOf(answer).code, 'unavailable');
      assert.match(errorOf(answer).message, /^feedback could not be stored: .*SY_FEEDBACK/);
    } finally {
      await bridge.stop();
      await server.stop();
    }
  });

  it('is 503 when JetStream is off', async () => {
    const server = await NatsServer.start();
    const bridge = await startBridge({ port: 0, nats: { servers: server.url } });
    try {
      const answer = await send(bridge.url, '/v1/feedback', undefined, { id: 'r', rating: 0.5 });
      assert.equal(answer.status, 503);
      assert.match(errorOf(answer).message, /^feedback could not be stored/);
    } finally {
      await bridge.stop();
      await server.stop();
    }
  });
});

describe('metadata, key ids and response ids on generation requests', () => {
  let cluster: TestCluster;
  let url: string;
  const seen: Array<{ requestId: string; keyId: string; metadata: unknown }> = [];
  let frontDoor: Subscription;

  before(async () => {
    const options = keyed();
    cluster = await startCluster([{ id: 'r1' }], {
      ...options,
      policies: {
        ...options.policies,
        cache: responseCacheSource({ enabled: true, bucket: 'sy_feedback_cache' }),
      },
    });
    await ensureCaptureStreams(cluster.nc, { storage: 'memory' });
    url = cluster.bridges[0]!.url;
    frontDoor = cluster.nc.subscribe(GENERATE_SUBJECT, {
      callback: (_err, msg: Msg) =>
        void seen.push({
          requestId: msg.headers?.get(HEADERS.requestId) ?? '',
          keyId: msg.headers?.get(HEADERS.keyId) ?? '',
          metadata: decodeGenerateRequest(msg.data).metadata,
        }),
    });
    await cluster.nc.flush();
  });

  after(async () => {
    frontDoor?.unsubscribe();
    await cluster?.close();
  });

  const chat = (body: object, requestId: string): Promise<Answer> =>
    post(`${url}/v1/chat/completions`, body, {
      'content-type': 'application/json',
      authorization: `Bearer ${KEY_A}`,
      'x-request-id': requestId,
    });

  it('sends metadata and Sy-Key-Id to the front door; the response id is the cluster id; feedback on it joins', async () => {
    const answer = await chat(
      {
        model: MODEL,
        messages: [{ role: 'user', content: 'hello' }],
        max_tokens: 4,
        metadata: { experiment: 'fb-1', user_group: 'beta' },
      },
      'meta-1',
    );
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.headers['x-request-id'], 'meta-1', 'the caller still sees its own id');
    const { id } = JSON.parse(answer.text) as { id: string };
    assert.equal(id, 'chatcmpl-ka:meta-1');
    await waitFor('the request on the front door', () => seen.some((s) => s.requestId === 'ka:meta-1'));
    const sent = seen.find((s) => s.requestId === 'ka:meta-1')!;
    assert.equal(sent.keyId, 'ka');
    assert.deepEqual(sent.metadata, { experiment: 'fb-1', user_group: 'beta' });

    const fb = await send(url, '/v1/feedback', KEY_A, { id, rating: 'up' });
    assert.equal(fb.status, 202, fb.text);
    assert.equal((await storedFeedback(cluster.nc)).at(-1)?.request_id, sent.requestId);
  });

  it('refuses bad metadata with a 400 naming it', async () => {
    const tooMany = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
    for (const [metadata, message] of [
      [tooMany, /^metadata must be an object of at most 16 string pairs/],
      [{ k: 5 }, /^metadata\.k must be a string/],
      [{ k: 'v'.repeat(513) }, /^metadata\.k must be a string of at most 512/],
      [['a'], /^metadata must be an object/],
    ] as const) {
      const answer = await chat(
        { model: MODEL, messages: [{ role: 'user', content: 'x' }], metadata },
        'bad-meta',
      );
      assert.equal(answer.status, 400, answer.text);
      assert.match(errorOf(answer).message, message);
    }
  });

  it('names choice i of a multi-prompt request <id>.<i>, choice 0 the id itself', async () => {
    const answer = await post(
      `${url}/v1/completions`,
      { model: MODEL, prompt: ['one', 'two'], max_tokens: 2, metadata: { batch: 'b' } },
      { 'content-type': 'application/json', authorization: `Bearer ${KEY_A}`, 'x-request-id': 'multi' },
    );
    assert.equal(answer.status, 200, answer.text);
    assert.equal((JSON.parse(answer.text) as { id: string }).id, 'cmpl-ka:multi');
    await waitFor(
      'both choices on the front door',
      () => seen.filter((s) => s.requestId.startsWith('ka:multi')).length >= 2,
    );
    const choices = seen.filter((s) => s.requestId.startsWith('ka:multi'));
    assert.deepEqual(choices.map((s) => s.requestId).sort(), ['ka:multi', 'ka:multi.1']);
    assert.ok(choices.every((s) => JSON.stringify(s.metadata) === '{"batch":"b"}'));
    const fb = await send(url, '/v1/feedback', KEY_A, { id: 'cmpl-ka:multi', index: 1, rating: 0.2 });
    assert.equal(fb.status, 202);
    assert.equal((await storedFeedback(cluster.nc)).at(-1)?.request_id, 'ka:multi.1');
  });

  it('leaves the response cache key alone: the same request with other metadata is a hit', async () => {
    const body = {
      model: MODEL,
      messages: [{ role: 'user', content: 'cache me' }],
      max_tokens: 6,
      temperature: 0,
    };
    const first = await chat({ ...body, metadata: { run: '1' } }, 'cache-1');
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers['x-switchyard-cache'], 'miss');
    const second = await chat({ ...body, metadata: { run: '2' } }, 'cache-2');
    assert.equal(second.status, 200);
    assert.equal(second.headers['x-switchyard-cache'], 'hit');
  });
});
