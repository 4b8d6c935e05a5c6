/**
 * The load client's HTTP path against a scripted bridge on loopback: SSE events become chunks of
 * their attempt, retryable answers and cut streams are retried with the same x-request-id, a
 * refusal is recorded with its HTTP status.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Operation, Via } from '../../chaos/history/types.ts';
import { fingerprintVersion, sendHttp } from '../../chaos/load-http.ts';

type Script = (res: ServerResponse, attempt: number) => void;

const sse = (res: ServerResponse, events: unknown[], done = true): void => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const e of events) res.write(`data: ${JSON.stringify(e)}\n\n`);
  if (done) res.end('data: [DONE]\n\n');
};
const event = (text: string, finish: string | null = null): unknown => ({
  choices: [{ index: 0, text, finish_reason: finish }],
});
const usage = { choices: [], usage: { completion_tokens: 3 } };

describe('load client over HTTP', () => {
  let url = '';
  let script: Script = () => {};
  const seen: Array<{ id: string | undefined; body: Record<string, unknown> }> = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push({
        id: req.headers['x-request-id'] as string | undefined,
        body: JSON.parse(body) as Record<string, unknown>,
      });
      script(res, seen.length);
    });
  });
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  async function send(via: Via): Promise<Operation> {
    seen.length = 0;
    const op: Operation = {
      id: 'http1-7',
      client: 'http1',
      via,
      request: { model: 'tiny-gpt2', prompt: 'p', maxTokens: 3, temperature: 0 },
      invokedAt: Date.now(),
      deadline: Date.now() + 5_000,
      chunks: [],
      outcome: { kind: 'unknown', at: Date.now() },
    };
    op.outcome = await sendHttp(op, {
      baseUrl: url,
      stopped: new AbortController().signal,
      onStreaming() {},
    });
    return op;
  }

  it('records each SSE event as a chunk of attempt 1 and the usage count', async () => {
    script = (res) => sse(res, [event('a'), event('b'), event('', 'length'), usage]);
    const op = await send('http-stream');
    assert.deepEqual(
      op.chunks.map((c) => [c.seq, c.attempt, c.text]),
      [
        [0, 1, 'a'],
        [1, 1, 'b'],
        [2, 1, ''],
        [3, 1, ''],
      ],
    );
    assert.deepEqual(
      { ...op.outcome, at: 0 },
      { kind: 'ok', finishReason: 'length', completionTokens: 3, at: 0 },
    );
    assert.equal(seen[0]?.id, 'http1-7');
    assert.equal(seen[0]?.body.stream, true);
  });

  it('retries a 503 and a cut stream with the same request id; chunks carry their attempt', async () => {
    script = (res, n) => {
      if (n === 1) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'unavailable', message: 'no replica' } }));
      } else if (n === 2) {
        sse(res, [event('a')], false);
        setTimeout(() => res.socket?.destroy(), 20);
      } else sse(res, [event('a'), event('b'), event('', 'length'), usage]);
    };
    const op = await send('http-stream');
    assert.equal(op.outcome.kind, 'ok');
    assert.deepEqual(
      seen.map((s) => s.id),
      ['http1-7', 'http1-7', 'http1-7'],
    );
    assert.deepEqual(
      op.chunks.map((c) => [c.attempt, c.seq]),
      [
        [2, 0],
        [3, 0],
        [3, 1],
        [3, 2],
        [3, 3],
      ],
    );
  });

  it('records a refusal that is not retryable with its HTTP status, after one attempt', async () => {
    script = (res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'forbidden', message: 'in use' } }));
    };
    const op = await send('http');
    assert.equal(seen.length, 1);
    assert.equal(op.outcome.kind, 'error');
    assert.equal(op.outcome.kind === 'error' && op.outcome.code, 'forbidden');
    assert.equal(op.outcome.kind === 'error' && op.outcome.httpStatus, 403);
  });

  it('reads an unstreamed chat body as one chunk', async () => {
    script = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
          usage: { completion_tokens: 1 },
        }),
      );
    };
    const op = await send('http');
    assert.deepEqual(
      op.chunks.map((c) => c.text),
      ['hi'],
    );
    assert.equal(op.outcome.kind === 'ok' && op.outcome.completionTokens, 1);
  });

  it("records the version each chunk and the body name (system_fingerprint), and the end's", async () => {
    const at = (version: string | null, e: unknown): unknown => ({
      ...(e as object),
      system_fingerprint: version === null ? null : `tiny-gpt2@${version}`,
    });
    script = (res) => sse(res, [at('2', event('a')), at('2', event('', 'length')), at('2', usage)]);
    const streamed = await send('http-stream');
    assert.deepEqual(
      streamed.chunks.map((c) => c.modelVersion),
      ['2', '2', '2'],
    );
    assert.equal(streamed.outcome.kind === 'ok' && streamed.outcome.modelVersion, '2');
    script = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(at('1', { ...(event('abc', 'length') as object), usage })));
    };
    const body = await send('http');
    assert.deepEqual(
      body.chunks.map((c) => c.modelVersion),
      ['1'],
    );
    assert.equal(body.outcome.kind === 'ok' && body.outcome.modelVersion, '1');
    // A fingerprint that names no version leaves none recorded.
    script = (res) => sse(res, [at(null, event('a', 'length'))]);
    const unnamed = await send('http-stream');
    assert.equal(unnamed.chunks[0]?.modelVersion, undefined);
    assert.equal(unnamed.outcome.kind === 'ok' && unnamed.outcome.modelVersion, undefined);
  });

  it('reads the version out of a fingerprint, and nothing out of anything else', () => {
    assert.equal(fingerprintVersion('tiny-gpt2@2'), '2');
    assert.equal(fingerprintVersion('a@b@3'), '3');
    for (const bad of [null, undefined, 3, '', 'tiny-gpt2', 'tiny-gpt2@', '@2'])
      assert.equal(fingerprintVersion(bad), undefined, String(bad));
  });
});
