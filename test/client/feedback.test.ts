/**
 * Feedback from a NATS client against a real nats-server with JetStream: `client.feedback()`
 * resolves only once the item is in the SY_FEEDBACK stream (checked by reading the stream),
 * choice `index` names the choice's request id, bad input is refused before anything is
 * published, and a missing stream or a server without JetStream is `unavailable`, with nothing
 * kept. Also: the client sends `metadata` in the generate request and `Sy-Key-Id` when given.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { SwitchyardClient } from '../../src/client/client.ts';
import { publishFeedback } from '../../src/capture/feedback.ts';
import { feedbackEvent } from '../../src/capture/feedback-input.ts';
import { ensureCaptureStreams } from '../../src/capture/streams.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { decodeFeedback, type FeedbackEvent } from '../../src/cluster/messages/capture.ts';
import { FEEDBACK_STREAM } from '../../src/cluster/subjects.ts';
import { InvalidRequestError, UnavailableError } from '../../src/errors/errors.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { FakeRouter } from './fake-router.ts';

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

describe('feedback input', () => {
  it('turns thumbs into ratings, names the choice, and keeps the optional fields', () => {
    const up = feedbackEvent('req-1', { thumbs: 'up', tags: ['good'], comment: 'nice' });
    assert.equal(up.request_id, 'req-1');
    assert.equal(up.rating, 1);
    assert.equal(up.thumbs, 'up');
    assert.deepEqual(up.tags, ['good']);
    assert.equal(up.comment, 'nice');
    assert.equal(feedbackEvent('req-1', { thumbs: 'down' }).rating, 0);
    const second = feedbackEvent('req-1', { rating: 0.25, index: 2, correction: 'better' });
    assert.equal(second.request_id, 'req-1.2');
    assert.equal(second.thumbs, undefined);
    assert.equal(second.correction, 'better');
    const keyed = feedbackEvent('k:x', { rating: 1 }, { apiKeyId: 'k', receivedAt: new Date(0) });
    assert.equal(keyed.api_key_id, 'k');
    assert.equal(keyed.received_at, '1970-01-01T00:00:00.000Z');
  });

  it('refuses bad input naming the field', () => {
    const refused = (input: object, pattern: RegExp, id = 'req-1'): void =>
      assert.throws(
        () => feedbackEvent(id, input),
        (err: unknown) => err instanceof InvalidRequestError && pattern.test(err.message),
      );
    refused({}, /rating is required/);
    refused({ rating: 1, thumbs: 'up' }, /rating or thumbs, not both/);
    refused({ rating: 1.5 }, /^rating must be a number between 0 and 1, got 1.5/);
    refused({ rating: '1' }, /^rating must be a number/);
    refused({ thumbs: 'sideways' }, /^thumbs must be one of 'up', 'down'/);
    refused({ rating: 1, index: -1 }, /^index must be an integer >= 0/);
    refused({ rating: 1, index: 0.5 }, /^index must be an integer/);
    refused({ rating: 1, correction: 'x'.repeat(65_537) }, /^correction must be a string of at most 65536/);
    refused({ rating: 1, comment: 'x'.repeat(4_097) }, /^comment must be a string of at most 4096/);
    refused({ rating: 1, tags: 'one' }, /^tags must be an array of at most 16 strings/);
    refused({ rating: 1, tags: Array.from({ length: 17 }, () => 't') }, /^tags must be an array/);
    refused({ rating: 1, tags: [''] }, /^tags\[0\] must be a string of 1 to 64/);
    refused({ rating: 1 }, /^request id must be a string matching/, 'has spaces');
  });
});

describe('client.feedback', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let client: SwitchyardClient;

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connectNats({ servers: server.url });
    await ensureCaptureStreams(nc, { storage: 'memory' });
    client = await SwitchyardClient.connect({ nats: { servers: server.url } });
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await server?.stop();
  });

  it('resolves once the feedback is in the stream, choice index included', async () => {
    const stored = await client.feedback('nats-req-1', { thumbs: 'up', tags: ['helpful'] });
    assert.equal(stored.request_id, 'nats-req-1');
    await client.feedback('nats-req-1', { rating: 0.4, index: 1, correction: 'a better answer' });
    const items = await storedFeedback(nc);
    assert.equal(items.length, 2);
    assert.deepEqual(
      items.map((i) => [i.request_id, i.rating, i.thumbs]),
      [
        ['nats-req-1', 1, 'up'],
        ['nats-req-1.1', 0.4, undefined],
      ],
    );
    assert.deepEqual(items[0]!.tags, ['helpful']);
    assert.equal(items[1]!.correction, 'a better answer');
    assert.equal(items[0]!.api_key_id, undefined, 'a NATS client claims no API key');
  });

  it('refuses bad feedback before publishing anything', async () => {
    const before = (await storedFeedback(nc)).length;
    await assert.rejects(client.feedback('nats-req-2', { rating: 7 }), InvalidRequestError);
    await assert.rejects(client.feedback('bad id', { rating: 1 }), InvalidRequestError);
    assert.equal((await storedFeedback(nc)).length, before);
  });

  it('sends metadata in the generate request and Sy-Key-Id when the caller gives one', async () => {
    const routerNc = await connectNats({ servers: server.url });
    const router = await FakeRouter.start(routerNc, 'rt-meta', ({ responder }) => {
      responder.ack({ by: 'rt-meta' });
      responder.end({ finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 0 } });
    });
    try {
      await client.generate(
        { model: 'm', prompt: 'hi', metadata: { team: 'search', run: '7' } },
        { keyId: 'k-1' },
      );
      await client.generate({ model: 'm', prompt: 'hi' });
      const [first, second] = router.received;
      assert.deepEqual(first?.request.metadata, { team: 'search', run: '7' });
      assert.equal(first?.meta.keyId, 'k-1');
      assert.equal(second?.request.metadata, undefined);
      assert.equal(second?.meta.keyId, undefined);
      assert.throws(
        () => client.stream({ model: 'm', prompt: 'hi', metadata: { k: 'x'.repeat(513) } }),
        /metadata\.k must be a string of at most 512/,
      );
      assert.throws(() => client.stream({ model: 'm', prompt: 'hi' }, { keyId: 'a:b' }), /keyId must be/);
    } finally {
      await router.stop();
      await routerNc.close();
    }
  });
});

describe('feedback that cannot be stored', () => {
  it('is unavailable when the feedback stream does not exist, and nothing is kept', async () => {
    const server = await NatsServer.start({ jetstream: true });
    const nc = await connectNats({ servers: server.url });
    try {
      await assert.rejects(
        publishFeedback(nc, feedbackEvent('r', { thumbs: 'down' }), 2_000),
        (err: unknown) =>
          err instanceof UnavailableError &&
          /^feedback could not be stored: no JetStream stream takes .*SY_FEEDBACK/.test(err.message),
      );
      // Created afterwards, the stream holds nothing: the refused item was not buffered.
      await ensureCaptureStreams(nc, { storage: 'memory' });
      assert.equal((await storedFeedback(nc)).length, 0);
    } finally {
      await nc.close();
      await server.stop();
    }
  });

  it('is unavailable when JetStream is off', async () => {
    const server = await NatsServer.start();
    const client = await SwitchyardClient.connect({ nats: { servers: server.url } });
    try {
      await assert.rejects(
        client.feedback('r', { rating: 0.5 }, { timeoutMs: 2_000 }),
        (err: unknown) =>
          err instanceof UnavailableError && /^feedback could not be stored/.test(err.message),
      );
    } finally {
      await client.close();
      await server.stop();
    }
  });
});
