import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { SwitchyardClient } from '../../src/client/client.ts';
import type { ClientOptions } from '../../src/client/options.ts';
import type { StreamDelta } from '../../src/client/stream.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { REQUEST_ID_PATTERN } from '../../src/cluster/messages/stream.ts';
import {
  BusyError,
  CancelledError,
  DeadlineExceededError,
  EngineFailedError,
  InvalidRequestError,
  UnavailableError,
} from '../../src/errors/errors.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { FakeRouter, sleep, type Script } from './fake-router.ts';

/** Short windows so failover tests take a fraction of a second. */
const SILENCE_MS = 300;
const ACK_TIMEOUT_MS = 500;

let server: NatsServer;
let routerNc: NatsConnection;
const routers: FakeRouter[] = [];
const clients: SwitchyardClient[] = [];

async function router(id: string, script: Script): Promise<FakeRouter> {
  const r = await FakeRouter.start(routerNc, id, script);
  routers.push(r);
  return r;
}

async function client(opts: ClientOptions = {}): Promise<SwitchyardClient> {
  const c = await SwitchyardClient.connect({
    nats: { servers: server.url },
    routerSilenceMs: SILENCE_MS,
    ackTimeoutMs: ACK_TIMEOUT_MS,
    ...opts,
  });
  clients.push(c);
  return c;
}

before(async () => {
  server = await NatsServer.start();
  routerNc = await connectNats({ servers: server.url, name: 'fake-routers' });
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const r of routers.splice(0)) await r.stop();
});
after(async () => {
  await routerNc.close();
  await server.stop();
});

describe('SwitchyardClient', () => {
  it('streams chunks, then the end, usage and the seed the router announced', async () => {
    const r = await router('r-happy', ({ responder }) => {
      responder.ack({ by: 'r-happy', seed: 1234 });
      responder.chunk({ tokenIds: [10, 11], text: 'He' });
      responder.chunk({ tokenIds: [12], text: 'llo' });
      responder.end({ finishReason: 'length', usage: { promptTokens: 4, completionTokens: 3 } });
    });
    const c = await client();
    const before = Date.now();
    const stream = c.stream(
      { model: 'tiny', prompt: 'Say hi', maxTokens: 3, temperature: 0 },
      { timeoutMs: 10_000, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    );
    const deltas: StreamDelta[] = [];
    for await (const d of stream) deltas.push(d);
    assert.deepEqual(deltas, [
      { tokenIds: [10, 11], text: 'He' },
      { tokenIds: [12], text: 'llo' },
    ]);
    assert.deepEqual(await stream.result, {
      finishReason: 'length',
      usage: { promptTokens: 4, completionTokens: 3 },
      attempts: 1,
      seed: 1234,
    });
    assert.equal(await stream.seed, 1234);
    assert.match(stream.requestId, REQUEST_ID_PATTERN);
    assert.equal(stream.routerId, 'r-happy');

    const [rx] = r.received;
    assert.ok(rx);
    assert.equal(rx.meta.requestId, stream.requestId);
    assert.equal(rx.meta.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.ok(rx.meta.deadline !== undefined && Math.abs(rx.meta.deadline - (before + 10_000)) < 1_000);
    assert.deepEqual(rx.request, { model: 'tiny', prompt: 'Say hi', maxTokens: 3, temperature: 0 });
  });

  it('generate() gathers the text and picks a seed for a sampled request up front', async () => {
    await router('r-gen', ({ request, responder }) => {
      responder.ack({ by: 'r-gen', seed: request.seed });
      responder.chunk({ tokenIds: [1], text: 'a' });
      responder.chunk({ tokenIds: [2], text: 'b' });
      responder.end({ finishReason: 'stop', usage: { promptTokens: 2, completionTokens: 2 } });
    });
    const c = await client();
    const result = await c.generate(
      { model: 'tiny', prompt: 'x', temperature: 0.8 },
      { requestId: 'my-req.1' },
    );
    assert.equal(result.text, 'ab');
    assert.deepEqual(result.tokenIds, [1, 2]);
    assert.equal(result.requestId, 'my-req.1');
    assert.equal(typeof result.seed, 'number');
  });

  it('resends to another router when its router goes silent, resuming exactly', async () => {
    let b: FakeRouter | undefined;
    const a = await router('r-a', async ({ request, responder }, self) => {
      responder.ack({ by: 'r-a', seed: request.seed });
      responder.chunk({ tokenIds: [1, 2], text: 'one two' });
      responder.chunk({ tokenIds: [3], text: ' three' });
      // B joins the front door, then A leaves it and stops beating: hung or cut off.
      b = await router('r-b', ({ request: resent, responder: rb }) => {
        rb.ack({ by: 'r-b', seed: resent.seed });
        rb.chunk({ tokenIds: [4], text: ' four' });
        rb.chunk({ tokenIds: [5], text: ' five' });
        rb.end({ finishReason: 'length', usage: { promptTokens: 3, completionTokens: 2 }, attempts: 1 });
      });
      await self.freeze();
      // A still hears cancels; once told, it sends a stale chunk that must not reach the caller.
      await self.waitForCancel(rx0(self).meta.requestId ?? '');
      responder.chunk({ tokenIds: [99], text: ' stale' });
      responder.end({ finishReason: 'length', usage: { promptTokens: 3, completionTokens: 4 } });
    });
    const c = await client();
    const stream = c.stream({ model: 'tiny', prompt: 'count', maxTokens: 5, temperature: 0.9 });
    const seed = await stream.seed;
    assert.equal(typeof seed, 'number');
    const ids: number[] = [];
    let text = '';
    for await (const d of stream) {
      ids.push(...d.tokenIds);
      text += d.text;
    }
    assert.deepEqual(ids, [1, 2, 3, 4, 5]);
    assert.equal(text, 'one two three four five');
    const result = await stream.result;
    assert.deepEqual(result, {
      finishReason: 'length',
      usage: { promptTokens: 3, completionTokens: 5 },
      attempts: 2,
      seed,
    });

    assert.ok(b);
    const [first] = a.received;
    const [resent] = b.received;
    assert.ok(first && resent);
    assert.equal(resent.meta.requestId, stream.requestId);
    assert.equal(first.meta.requestId, stream.requestId);
    assert.deepEqual(resent.request.resumeTokenIds, [1, 2, 3]);
    assert.equal(resent.request.maxTokens, 2);
    assert.equal(resent.request.seed, seed);
    assert.equal(first.request.seed, seed);
    const cancel = await a.waitForCancel(stream.requestId);
    assert.equal(cancel.requestId, stream.requestId);
    assert.equal(stream.routerId, 'r-b');
  });

  it('leaves max_tokens absent on a resend when nobody settled it, and starts past the attempts used', async () => {
    await router('r-unavail', ({ request, responder, n }) => {
      responder.ack({ by: 'r-unavail', seed: request.seed });
      if (n === 1) {
        responder.chunk({ tokenIds: [7], text: 'x' });
        responder.error(new UnavailableError('replica lost'));
        return;
      }
      assert.deepEqual(request.resumeTokenIds, [7]);
      responder.chunk({ tokenIds: [8], text: 'y', attempt: 2 });
      responder.end({ finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 1 }, attempts: 2 });
    });
    const c = await client();
    const result = await c.generate({ model: 'tiny', prompt: 'p', temperature: 0 });
    assert.equal(result.text, 'xy');
    assert.deepEqual(result.usage, { promptTokens: 1, completionTokens: 2 });
    // Attempt numbers run across resends: the final router's count is the request's.
    assert.equal(result.attempts, 2);
    const r = routers[0];
    assert.ok(r);
    assert.equal(r.received[0]?.meta.attempt, 1);
    assert.equal(r.received[1]?.meta.attempt, 2);
    assert.equal(r.received[1]?.request.maxTokens, undefined);
  });

  it('resends with what remains of the max_tokens the router settled when the caller gave none', async () => {
    await router('r-settled', ({ request, responder, n }) => {
      responder.ack({ by: 'r-settled', seed: request.seed });
      if (n === 1) {
        responder.chunk({ tokenIds: [7], text: 'x', maxTokens: 5 });
        responder.chunk({ tokenIds: [9], text: 'z' });
        responder.error(new UnavailableError('replica lost'));
        return;
      }
      responder.chunk({ tokenIds: [8], text: 'y' });
      responder.end({ finishReason: 'length', usage: { promptTokens: 1, completionTokens: 3 } });
    });
    const c = await client();
    const result = await c.generate({ model: 'tiny', prompt: 'p', temperature: 0 });
    assert.equal(result.text, 'xzy');
    const resent = routers[0]?.received[1]?.request;
    assert.deepEqual(resent?.resumeTokenIds, [7, 9]);
    assert.equal(resent?.maxTokens, 3);
  });

  it('resumes a stream whose end was lost after its last token with max_tokens 0, and delivers nothing twice', async () => {
    await router('r-lastA', async ({ request, responder }, self) => {
      responder.ack({ by: 'r-lastA', seed: request.seed });
      responder.chunk({ tokenIds: [1, 2], text: 'ab' });
      responder.chunk({ tokenIds: [3], text: 'c' });
      await router('r-lastB', ({ request: resent, responder: rb }) => {
        assert.deepEqual(resent.resumeTokenIds, [1, 2, 3]);
        assert.equal(resent.maxTokens, 0);
        rb.ack({ by: 'r-lastB', seed: resent.seed });
        // The replica's admission ends such a resume at once, with no chunk.
        rb.end({ finishReason: 'length', usage: { promptTokens: 2, completionTokens: 0 } });
      });
      await self.freeze();
    });
    const c = await client();
    const result = await c.generate({ model: 'tiny', prompt: 'p', maxTokens: 3, temperature: 0 });
    assert.equal(result.text, 'abc');
    assert.deepEqual(result.tokenIds, [1, 2, 3]);
    assert.deepEqual(result.usage, { promptTokens: 2, completionTokens: 3 });
    assert.equal(result.finishReason, 'length');
  });

  it('delivers the text of the end (released at EOS, tied to no token) once, after the chunks', async () => {
    await router('r-tail', ({ request, responder }) => {
      responder.ack({ by: 'r-tail', seed: request.seed });
      responder.chunk({ tokenIds: [1], text: 'a' });
      responder.end({ finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 2 }, text: ' S' });
    });
    const c = await client();
    const result = await c.generate({ model: 'tiny', prompt: 'p', temperature: 0, stop: [' STOP'] });
    assert.equal(result.text, 'a S');
    assert.deepEqual(result.tokenIds, [1]);
  });

  it('resends a cancelled end it did not ask for, and never takes it as success', async () => {
    await router('r-dropped', ({ request, responder, n }) => {
      responder.ack({ by: 'r-dropped', seed: request.seed });
      if (n === 1) {
        responder.chunk({ tokenIds: [4], text: 'd' });
        responder.end({ finishReason: 'cancelled', usage: { promptTokens: 1, completionTokens: 1 } });
        return;
      }
      assert.deepEqual(request.resumeTokenIds, [4]);
      responder.chunk({ tokenIds: [5], text: 'e' });
      responder.end({ finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 1 } });
    });
    const c = await client();
    const result = await c.generate({ model: 'tiny', prompt: 'p', temperature: 0 });
    assert.equal(result.text, 'de');
    assert.equal(result.finishReason, 'stop');
  });

  it('never resends engine_failed: the router already retried it once elsewhere', async () => {
    const r = await router('r-engine', ({ responder }) => {
      responder.ack({ by: 'r-engine' });
      responder.error(new EngineFailedError('inference failed on 2 replicas'));
    });
    const c = await client();
    await assert.rejects(c.generate({ model: 'tiny', prompt: 'p', temperature: 0 }), EngineFailedError);
    assert.equal(r.received.length, 1);
  });

  it('hands busy to the caller without resending', async () => {
    const r = await router('r-busy', ({ responder }) => {
      responder.error(new BusyError('queue full'));
    });
    const c = await client();
    await assert.rejects(c.generate({ model: 'tiny', prompt: 'p' }), BusyError);
    // A resend would have been answered (busy again) before the client gave up: no wait needed.
    assert.equal(r.received.length, 1);
  });

  it('fails with unavailable at once when no router listens (no responders)', async () => {
    // A long ack timeout: only the server's no-responders status can end this before it.
    const ackTimeoutMs = 30_000;
    const c = await client({ ackTimeoutMs });
    const started = Date.now();
    await assert.rejects(
      c.generate({ model: 'tiny', prompt: 'p' }),
      (err: unknown) => err instanceof UnavailableError && /no responders/.test(err.message),
    );
    assert.ok(Date.now() - started < ackTimeoutMs, 'it waited for the ack timeout');
  });

  it('gives up after maxAttempts sends', async () => {
    const r = await router('r-flaky', ({ responder }) => {
      responder.ack({ by: 'r-flaky' });
      responder.error(new UnavailableError('no replica'));
    });
    const c = await client({ maxAttempts: 2 });
    await assert.rejects(c.generate({ model: 'tiny', prompt: 'p', temperature: 0 }), UnavailableError);
    assert.equal(r.received.length, 2);
  });

  it('resends a send lost before any router acked it until the deadline, outside maxAttempts', async () => {
    // A silently dead NATS route keeps its share of the queue group: sends vanish unacked.
    let seen = 0;
    const r = await router('r-far', ({ responder }) => {
      seen += 1;
      if (seen <= 2) return;
      responder.ack({ by: 'r-far' });
      responder.end({ finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 0 } });
    });
    const c = await client({ maxAttempts: 2 });
    await c.generate({ model: 'tiny', prompt: 'p', temperature: 0 }, { timeoutMs: 10 * ACK_TIMEOUT_MS });
    assert.equal(r.received.length, 3);
  });

  it('tells the router when the caller aborts, and ends with CancelledError', async () => {
    const r = await router('r-abort', ({ responder }) => {
      responder.ack({ by: 'r-abort' });
      responder.chunk({ tokenIds: [1], text: 'a' });
    });
    const c = await client();
    const ac = new AbortController();
    const stream = c.stream({ model: 'tiny', prompt: 'p', temperature: 0 }, { signal: ac.signal });
    const seen: number[] = [];
    await assert.rejects(async () => {
      for await (const d of stream) {
        seen.push(...d.tokenIds);
        ac.abort();
      }
    }, CancelledError);
    assert.deepEqual(seen, [1]);
    await assert.rejects(stream.result, CancelledError);
    const cancel = await r.waitForCancel(stream.requestId);
    assert.equal(cancel.requestId, stream.requestId);
  });

  it('cancels quietly when the consumer breaks out of the loop', async () => {
    const r = await router('r-break', ({ responder }) => {
      responder.ack({ by: 'r-break' });
      responder.chunk({ tokenIds: [1], text: 'a' });
    });
    const c = await client();
    const stream = c.stream({ model: 'tiny', prompt: 'p', temperature: 0 });
    for await (const d of stream) {
      assert.deepEqual(d.tokenIds, [1]);
      break;
    }
    await assert.rejects(stream.result, CancelledError);
    await r.waitForCancel(stream.requestId);
  });

  it('cancels a request aborted before its ack, once the ack names the router', async () => {
    const r = await router('r-late', async ({ responder }) => {
      await sleep(100);
      responder.ack({ by: 'r-late' });
    });
    const c = await client();
    const ac = new AbortController();
    const stream = c.stream({ model: 'tiny', prompt: 'p', temperature: 0 }, { signal: ac.signal });
    await sleep(20);
    ac.abort();
    await assert.rejects(stream.result, CancelledError);
    await r.waitForCancel(stream.requestId);
  });

  it('close() cancels what is in flight and tells the routers', async () => {
    const r = await router('r-close', ({ responder }) => {
      responder.ack({ by: 'r-close' });
    });
    const c = await client();
    const stream = c.stream({ model: 'tiny', prompt: 'p', temperature: 0 });
    await stream.seed; // acked
    await c.close();
    await assert.rejects(stream.result, CancelledError);
    await r.waitForCancel(stream.requestId);
    assert.throws(() => c.stream({ model: 'tiny', prompt: 'p' }), UnavailableError);
  });

  it('ends with DeadlineExceededError when the deadline passes', async () => {
    await router('r-slow', ({ responder }) => {
      responder.ack({ by: 'r-slow' });
      responder.chunk({ tokenIds: [1], text: 'a' });
      // Keeps beating, never ends: only the deadline can end this request.
    });
    const c = await client();
    const started = Date.now();
    await assert.rejects(
      c.generate({ model: 'tiny', prompt: 'p', temperature: 0 }, { timeoutMs: 400 }),
      DeadlineExceededError,
    );
    // Not before the deadline; that it was the deadline (not a stall or a lost router) is in the
    // error's type, so no upper bound on a loaded machine's timer latency is needed.
    const took = Date.now() - started;
    assert.ok(took >= 390, `ended after ${took} ms, before its 400 ms deadline`);
  });

  it('resends what was in flight when its own NATS connection dropped (replies may be lost)', async () => {
    const r = await router('r-reconnect', ({ request, responder, n }) => {
      responder.ack({ by: 'r-reconnect', seed: request.seed });
      if (n === 1) {
        responder.chunk({ tokenIds: [1], text: 'a' });
        return; // the rest is "lost" in the outage
      }
      responder.chunk({ tokenIds: [2], text: 'b' });
      responder.end({ finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 1 } });
    });
    // Generous resends: the client may be back before the router's connection is.
    const c = await client({ maxAttempts: 5, retryBackoffMs: 250, routerSilenceMs: 60_000 });
    const stream = c.stream({ model: 'tiny', prompt: 'p', temperature: 0 }, { timeoutMs: 15_000 });
    const ids: number[] = [];
    for await (const d of stream) {
      ids.push(...d.tokenIds);
      if (ids.length === 1) await server.restart(300);
    }
    assert.deepEqual(ids, [1, 2]);
    const resent = r.received.find((rx) => rx.n > 1);
    assert.deepEqual(resent?.request.resumeTokenIds, [1]);
    assert.equal((await stream.result).usage.completionTokens, 2);
  });

  it('refuses bad input before sending, with the decoder message', async () => {
    const r = await router('r-never', ({ request, responder }) => {
      assert.equal(request.prompt, 'fine', 'only the well-formed request may be sent');
      responder.ack({ by: 'r-never' });
      responder.end({ finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 0 } });
    });
    const c = await client();
    assert.throws(
      () => c.stream({ model: 'tiny', prompt: 'p', maxTokens: -3 }),
      (err: unknown) => err instanceof InvalidRequestError && /max_tokens/.test(err.message),
    );
    assert.throws(() => c.stream({ model: 'bad model', prompt: 'p' }), InvalidRequestError);
    assert.throws(() => c.stream({ model: 'tiny' }), InvalidRequestError);
    assert.throws(() => c.stream({ model: 'tiny', prompt: 'p' }, { requestId: 'a b' }), InvalidRequestError);
    await assert.rejects(c.generate({ model: 'tiny', prompt: '' }), InvalidRequestError);
    // A well-formed request on the same connection arrives after anything sent before it.
    await c.generate({ model: 'tiny', prompt: 'fine' });
    assert.deepEqual(
      r.received.map((rx) => rx.request.prompt),
      ['fine'],
    );
  });
});

function rx0(r: FakeRouter): NonNullable<FakeRouter['received'][number]> {
  const first = r.received[0];
  if (first === undefined) throw new Error(`router ${r.id} received nothing`);
  return first;
}
