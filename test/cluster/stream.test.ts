import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import {
  HEADERS,
  errorFromHeaders,
  errorToHeaders,
  newHeaders,
  readRequestMeta,
  setKind,
  writeRequestMeta,
} from '../../src/cluster/headers.ts';
import { encodeChunk, type Chunk } from '../../src/cluster/messages/stream.ts';
import { openStream, type StreamEvent, type StreamOutcome } from '../../src/cluster/stream-requester.ts';
import { StreamResponder } from '../../src/cluster/stream-responder.ts';
import {
  BusyError,
  DeadlineExceededError,
  ERROR_CODES,
  InternalError,
  InvalidRequestError,
  RateLimitedError,
  type SwitchyardError,
  UnavailableError,
  errorFromCode,
} from '../../src/errors/errors.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const encoder = new TextEncoder();
let server: NatsServer;
let nc: NatsConnection;
let subjectCounter = 0;

/** A fresh subject per test, so responders of different tests never meet. */
function subject(): string {
  subjectCounter += 1;
  return `test.stream.${subjectCounter}`;
}

/** Serves `subject` with `handler`, which gets a responder bound to the request's reply inbox. */
function serve(subj: string, handler: (responder: StreamResponder, msg: Msg) => void): () => void {
  const sub = nc.subscribe(subj, {
    callback: (_err, msg) => {
      const meta = readRequestMeta(msg.headers);
      handler(
        new StreamResponder(nc, msg.reply ?? '', { requestId: meta.requestId, attempt: meta.attempt }),
        msg,
      );
    },
  });
  return () => sub.unsubscribe();
}

/** Opens a stream and collects every event until it is done. */
async function collect(
  subj: string,
  h: MsgHdrs = newHeaders(),
  opts: { ackTimeoutMs?: number; idleTimeoutMs?: number; deadline?: number; signal?: AbortSignal } = {},
): Promise<{ events: StreamEvent[]; outcome: StreamOutcome }> {
  const events: StreamEvent[] = [];
  const handle = openStream(nc, subj, encoder.encode('{}'), h, { ...opts, onMessage: (e) => events.push(e) });
  const outcome = await handle.done;
  return { events, outcome };
}

const kinds = (events: StreamEvent[]): string[] => events.map((e) => e.kind);

before(async () => {
  server = await NatsServer.start();
  nc = await connectNats({ servers: server.url });
});
after(async () => {
  await nc.close();
  await server.stop();
});

describe('streams over a real nats-server', () => {
  it('delivers ack, chunks and one end, in order, with request metadata', async () => {
    const subj = subject();
    let seenMeta: ReturnType<typeof readRequestMeta> | undefined;
    const sent: boolean[] = [];
    const stop = serve(subj, (r, msg) => {
      seenMeta = readRequestMeta(msg.headers);
      sent.push(r.ack({ by: 'replica-1', seed: 9 }));
      sent.push(r.chunk({ tokenIds: [1], text: 'a', seed: 9 }));
      sent.push(r.chunk({ tokenIds: [2, 3], text: 'bc' }));
      sent.push(r.end({ finishReason: 'length', usage: { promptTokens: 4, completionTokens: 3 } }));
      // After the end, everything is a no-op: a racing cancel cannot add a second terminal message.
      sent.push(r.end({ finishReason: 'stop', usage: { promptTokens: 0, completionTokens: 0 } }));
      sent.push(r.chunk({ tokenIds: [4], text: 'd' }));
      sent.push(r.error(new InternalError('late')));
    });
    const deadline = Date.now() + 10_000;
    const h = writeRequestMeta({ requestId: 'req-1', attempt: 2, deadline, traceparent: '00-abc-def-01' });
    const { events, outcome } = await collect(subj, h);
    await nc.flush(); // anything published after the end would have arrived (and been ignored) by now
    stop();
    assert.deepEqual(sent, [true, true, true, true, false, false, false]);
    assert.deepEqual(kinds(events), ['ack', 'chunk', 'chunk', 'end']);
    assert.deepEqual(seenMeta, { requestId: 'req-1', attempt: 2, deadline, traceparent: '00-abc-def-01' });
    const [ack, first, second, end] = events;
    assert.ok(
      ack?.kind === 'ack' && first?.kind === 'chunk' && second?.kind === 'chunk' && end?.kind === 'end',
    );
    assert.deepEqual(ack.ack, { by: 'replica-1', seed: 9, attempt: 2 });
    assert.equal(ack.msg.headers?.get(HEADERS.requestId), 'req-1');
    assert.deepEqual(first.chunk, { seq: 0, attempt: 2, tokenIds: [1], text: 'a', seed: 9 });
    assert.deepEqual(second.chunk, { seq: 1, attempt: 2, tokenIds: [2, 3], text: 'bc' });
    assert.deepEqual(end.end, {
      seq: 2,
      attempt: 2,
      finishReason: 'length',
      usage: { promptTokens: 4, completionTokens: 3 },
      attempts: 2,
    });
    assert.deepEqual(outcome, { ok: true, end: end.end });
  });

  it('delivers an error that refuses before the ack', async () => {
    const subj = subject();
    const stop = serve(subj, (r) => r.error(new BusyError('queue full (64 waiting)')));
    const { events, outcome } = await collect(subj);
    stop();
    assert.deepEqual(kinds(events), ['error']);
    assert.ok(!outcome.ok && outcome.error instanceof BusyError);
    assert.equal(outcome.error.message, 'queue full (64 waiting)');
    assert.equal(outcome.error.retryable, true);
  });

  it('delivers an error after some chunks, and nothing after it', async () => {
    const subj = subject();
    let lateEnd: boolean | undefined;
    const stop = serve(subj, (r) => {
      r.ack({ by: 'replica-1' });
      r.chunk({ tokenIds: [1], text: 'a' });
      r.error(new InternalError('engine failed'));
      lateEnd = r.end({ finishReason: 'stop', usage: { promptTokens: 1, completionTokens: 1 } });
    });
    const { events, outcome } = await collect(subj);
    stop();
    assert.equal(lateEnd, false);
    assert.deepEqual(kinds(events), ['ack', 'chunk', 'error']);
    assert.ok(!outcome.ok && outcome.error.code === 'internal');
  });

  it('answers a request nobody serves with unavailable', async () => {
    const { outcome } = await collect(subject());
    assert.ok(!outcome.ok && outcome.error instanceof UnavailableError, String(!outcome.ok && outcome.error));
    assert.match(outcome.error.message, /no responders/);
  });

  it('fails with unavailable when no ack comes in time', async () => {
    const subj = subject();
    const stop = serve(subj, () => undefined);
    const { outcome } = await collect(subj, newHeaders(), { ackTimeoutMs: 100 });
    stop();
    assert.ok(!outcome.ok && outcome.error instanceof UnavailableError);
    assert.match(outcome.error.message, /no ack from test\.stream\.\d+ within 100 ms/);
  });

  it('turns a seq gap (a lost chunk) into a retryable error', async () => {
    const subj = subject();
    const sub = nc.subscribe(subj, {
      callback: (_e, msg) => {
        const r = new StreamResponder(nc, msg.reply ?? '');
        r.ack({ by: 'replica-1' });
        const chunk: Chunk = { seq: 1, attempt: 1, tokenIds: [1], text: 'x' };
        nc.publish(msg.reply ?? '', encodeChunk(chunk), { headers: setKind(newHeaders(), 'chunk') });
      },
    });
    const { events, outcome } = await collect(subj);
    sub.unsubscribe();
    assert.deepEqual(kinds(events), ['ack', 'error']);
    assert.ok(!outcome.ok && outcome.error instanceof InternalError && outcome.error.retryable);
    assert.match(outcome.error.message, /lost messages: expected seq 0, got 1/);
  });

  it('turns a malformed body into internal, not invalid_request', async () => {
    const subj = subject();
    const sub = nc.subscribe(subj, {
      callback: (_e, msg) =>
        nc.publish(msg.reply ?? '', '{"by": 5}', { headers: setKind(newHeaders(), 'ack') }),
    });
    const { outcome } = await collect(subj);
    sub.unsubscribe();
    assert.ok(!outcome.ok && outcome.error instanceof InternalError);
    assert.match(outcome.error.message, /malformed ack from .*: by must be a string matching/);
  });

  it('ends at the deadline (from the Sy-Deadline header) when the responder stalls', async () => {
    const subj = subject();
    const stop = serve(subj, (r) => r.ack({ by: 'replica-1' }));
    const started = Date.now();
    const { events, outcome } = await collect(subj, writeRequestMeta({ deadline: Date.now() + 200 }));
    stop();
    assert.deepEqual(kinds(events), ['ack', 'error']);
    assert.ok(!outcome.ok && outcome.error instanceof DeadlineExceededError);
    // The error type says the deadline ended it; it must not have come early.
    assert.ok(Date.now() - started >= 199, `ended after ${Date.now() - started} ms`);
    const late = await collect(subj, newHeaders(), { deadline: Date.now() - 1 });
    assert.ok(!late.outcome.ok && late.outcome.error instanceof DeadlineExceededError);
  });

  it('ends a stalled stream after idleTimeoutMs, and on abort with cancelled', async () => {
    const subj = subject();
    const stop = serve(subj, (r) => {
      r.ack({ by: 'replica-1' });
      r.chunk({ tokenIds: [1], text: 'a' });
    });
    const idle = await collect(subj, newHeaders(), { idleTimeoutMs: 150 });
    assert.deepEqual(kinds(idle.events), ['ack', 'chunk', 'error']);
    assert.ok(!idle.outcome.ok && /stalled/.test(idle.outcome.error.message));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100).unref();
    const aborted = await collect(subj, newHeaders(), { signal: controller.signal });
    stop();
    assert.ok(!aborted.outcome.ok && aborted.outcome.error.code === 'cancelled');
  });

  it('refuses a chunk before the ack on the responder side', () => {
    const r = new StreamResponder(nc, 'test.nowhere');
    assert.throws(() => r.chunk({ tokenIds: [1], text: 'a' }), /chunk before ack/);
  });
});

describe('error headers', () => {
  it('round-trip every code of the taxonomy over NATS', async () => {
    const subj = subject();
    const received: SwitchyardError[] = [];
    const sub = nc.subscribe(subj, {
      max: ERROR_CODES.length,
      callback: (_e, msg) => {
        const err = errorFromHeaders(msg.headers);
        if (err !== undefined) received.push(err);
      },
    });
    for (const code of ERROR_CODES) {
      const original =
        code === 'rate_limited' ? new RateLimitedError('slow down', 1500) : errorFromCode(code, `m-${code}`);
      nc.publish(subj, '', { headers: errorToHeaders(original) });
    }
    await nc.flush();
    await sub.closed;
    assert.deepEqual(
      received.map((e) => e.code),
      [...ERROR_CODES],
    );
    for (const err of received) {
      assert.equal(err.constructor, errorFromCode(err.code, '').constructor);
      assert.equal(err.message, err.code === 'rate_limited' ? 'slow down' : `m-${err.code}`);
    }
    const limited = received.find((e) => e instanceof RateLimitedError);
    assert.ok(limited instanceof RateLimitedError && limited.retryAfterMs === 1500);
  });

  it('turn an unknown code into internal naming it, and fold line breaks', () => {
    const h = newHeaders();
    h.set(HEADERS.errorCode, 'quota_exceeded');
    h.set(HEADERS.errorMessage, 'too much');
    const err = errorFromHeaders(h);
    assert.ok(err instanceof InternalError);
    assert.match(err.message, /unknown error code 'quota_exceeded' from peer: too much/);
    const folded = errorFromHeaders(errorToHeaders(new InvalidRequestError('line one\r\nline two')));
    assert.ok(folded instanceof InvalidRequestError);
    assert.equal(folded.message, 'line one line two');
    assert.equal(errorFromHeaders(newHeaders()), undefined);
    assert.equal(errorFromHeaders(undefined), undefined);
  });

  it('reject malformed request metadata, naming the header', () => {
    const h = newHeaders();
    h.set(HEADERS.deadline, 'soon');
    assert.throws(() => readRequestMeta(h), /header Sy-Deadline must be an integer .*got "soon"/);
    const a = newHeaders();
    a.set(HEADERS.attempt, '0');
    assert.throws(() => readRequestMeta(a), /header Sy-Attempt must be an integer between 1 and 1000/);
    const r = newHeaders();
    r.set(HEADERS.requestId, 'has space');
    assert.throws(() => readRequestMeta(r), /header Sy-Request-Id must match/);
  });
});
