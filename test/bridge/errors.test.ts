/**
 * Every error status the bridge answers, with a real cluster: OpenAI-shaped bodies, the one
 * mapping of DESIGN.md's table, Retry-After on 429 and 503, and never a 5xx for a client mistake.
 * The replica takes one sequence and queues none, so a second long request is `busy`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { injectFault } from '../helpers/cluster.ts';
import { MODEL, post, rawHttp, startCluster, waitFor, type Answer, type TestCluster } from './harness.ts';

const OK = { model: MODEL, prompt: 'Errors', max_tokens: 4, temperature: 0 };
const LONG = { model: MODEL, prompt: 'Hold the slot', max_tokens: 200, temperature: 0, ignore_eos: true };

interface ErrorBody {
  error: { message: string; type: string; code: string; param: null };
}

function errorOf(answer: Answer): ErrorBody['error'] {
  const body = JSON.parse(answer.text) as ErrorBody;
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  return body.error;
}

function expectError(answer: Answer, status: number, code: string, message?: RegExp): void {
  assert.equal(answer.status, status, answer.text);
  assert.match(String(answer.headers['content-type']), /^application\/json/);
  const error = errorOf(answer);
  assert.equal(error.code, code);
  if (message !== undefined) assert.match(error.message, message);
}

describe('bridge errors', () => {
  let cluster: TestCluster;
  let url: string;

  before(async () => {
    cluster = await startCluster([{ id: 'r1', args: ['--max-batch-size', '1', '--max-queue', '0'] }]);
    url = cluster.bridges[0]!.url;
  });

  after(async () => {
    await cluster?.close();
  });

  async function replicaIdle(): Promise<boolean> {
    const view = (await (await fetch(`${url}/v1/cluster`)).json()) as {
      replicas: Array<{ active_sequences: number }>;
    };
    return view.replicas[0]?.active_sequences === 0;
  }

  const completions = (body: unknown, headers?: Record<string, string>): Promise<Answer> =>
    post(`${url}/v1/completions`, body, headers);
  const chat = (body: unknown): Promise<Answer> => post(`${url}/v1/chat/completions`, body);

  it('400 for a bad parameter, naming it as the caller spelled it', async () => {
    expectError(
      await completions({ ...OK, temperature: 5 }),
      400,
      'invalid_request',
      /^temperature must be a number between 0 and 2, got 5$/,
    );
    expectError(
      await completions({ ...OK, max_tokens: -3 }),
      400,
      'invalid_request',
      /^max_tokens must be an integer/,
    );
    expectError(
      await chat({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 0 }),
      400,
      'invalid_request',
      /^max_completion_tokens must be an integer/,
    );
    expectError(
      await completions({ ...OK, stop: '' }),
      400,
      'invalid_request',
      /^stop must be a string of 1 to 256/,
    );
    expectError(
      await completions({ ...OK, prompt: ['a', 7] }),
      400,
      'invalid_request',
      /^prompt must be a string, an array/,
    );
    expectError(
      await completions({ ...OK, prompt: ['a', ''] }),
      400,
      'invalid_request',
      /^prompt\[1\] must not be empty/,
    );
    expectError(
      await completions({ ...OK, model: 'bad model!' }),
      400,
      'invalid_request',
      /^model must be a model id/,
    );
    expectError(await completions({ prompt: 'x' }), 400, 'invalid_request', /^model is required/);
    expectError(await chat({ model: MODEL }), 400, 'invalid_request', /^messages is required/);
    expectError(
      await completions({ ...OK, stream: 'yes' }),
      400,
      'invalid_request',
      /^stream must be a boolean/,
    );
    const err = errorOf(await completions({ ...OK, top_p: 0 }));
    assert.equal(err.type, 'invalid_request_error');
  });

  it('400 for known but unsupported features, saying so', async () => {
    const msgs = [{ role: 'user', content: 'x' }];
    expectError(await completions({ ...OK, n: 2 }), 400, 'invalid_request', /^n = 2 .*is not supported/);
    expectError(
      await completions({ ...OK, logprobs: 2 }),
      400,
      'invalid_request',
      /^logprobs is not supported/,
    );
    expectError(
      await chat({ model: MODEL, messages: msgs, logprobs: true, top_logprobs: 2 }),
      400,
      'invalid_request',
      /logprobs is not supported/,
    );
    expectError(
      await chat({ model: MODEL, messages: msgs, tools: [{ type: 'function', function: { name: 'f' } }] }),
      400,
      'invalid_request',
      /^tools is not supported/,
    );
    expectError(
      await chat({ model: MODEL, messages: msgs, tool_choice: 'auto' }),
      400,
      'invalid_request',
      /tool_choice is not supported/,
    );
    expectError(
      await chat({ model: MODEL, messages: msgs, response_format: { type: 'json_object' } }),
      400,
      'invalid_request',
      /response_format type "json_object" .*not supported/,
    );
    expectError(
      await chat({
        model: MODEL,
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }],
      }),
      400,
      'invalid_request',
      /messages\[0\]\.content\[0\]\.type "image_url" \(only text parts\) is not supported/,
    );
    // Accepted: n = 1, a text response_format, logprobs false, unknown fields.
    const fine = await chat({
      model: MODEL,
      messages: msgs,
      n: 1,
      response_format: { type: 'text' },
      logprobs: false,
      max_tokens: 2,
      some_future_field: { x: 1 },
    });
    assert.equal(fine.status, 200, fine.text);
  });

  it('413 for a body over the limit, declared or chunked', async () => {
    const big = JSON.stringify({ ...OK, prompt: 'x'.repeat(1_100_000) });
    expectError(await completions(big), 413, 'invalid_request', /larger than the limit of 1048576 bytes/);
    const chunked = await rawHttp(
      cluster.bridges[0]!.port,
      'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `${(1_100_000).toString(16)}\r\n${'x'.repeat(1_100_000)}\r\n0\r\n\r\n`,
    );
    assert.match(chunked, /^HTTP\/1\.1 413 /);
  });

  it('404 for an unknown model and an unknown route; 405 with Allow for a wrong method', async () => {
    expectError(await completions({ ...OK, model: 'no-such-model' }), 404, 'model_not_found');
    assert.equal(errorOf(await completions({ ...OK, model: 'no-such-model' })).type, 'invalid_request_error');
    expectError(
      await post(`${url}/v1/embeddings`, OK),
      404,
      'invalid_request',
      /no route POST \/v1\/embeddings/,
    );
    const wrong = await fetch(`${url}/v1/completions`);
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'POST');
    const models = await post(`${url}/v1/models`, {});
    assert.equal(models.status, 405);
    assert.equal(models.headers.allow, 'GET, HEAD');
  });

  it('415 for a content type that is not JSON, and for none at all', async () => {
    expectError(
      await completions(JSON.stringify(OK), { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
      'invalid_request',
      /Content-Type 'application\/x-www-form-urlencoded' is not supported; send the body as JSON/,
    );
    expectError(
      await completions(JSON.stringify(OK), { 'content-type': 'application/json; charset=latin1' }),
      415,
      'invalid_request',
    );
    // No Content-Type is what a cross-site page can send without a CORS preflight: refused.
    expectError(await completions(JSON.stringify(OK), {}), 415, 'invalid_request', /has no Content-Type/);
    assert.equal(
      (await completions(JSON.stringify(OK), { 'content-type': 'application/json; charset=UTF-8' })).status,
      200,
    );
  });

  it('400 for malformed JSON, invalid UTF-8 and a body that is not an object', async () => {
    expectError(
      await completions('{"model": "tiny-gpt2", '),
      400,
      'invalid_request',
      /^request body is not valid JSON/,
    );
    const invalidUtf8 = Buffer.concat([
      Buffer.from('{"model":"tiny-gpt2","prompt":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}'),
    ]);
    expectError(await completions(invalidUtf8), 400, 'invalid_request', /^request body is not valid UTF-8/);
    expectError(
      await completions('[1, 2]'),
      400,
      'invalid_request',
      /^request must be a JSON object, got an array of 2/,
    );
    expectError(await completions(''), 400, 'invalid_request', /not valid JSON/);
  });

  it('never answers a client mistake with a 5xx', async () => {
    const bodies: unknown[] = [
      'null',
      '"text"',
      '1e999',
      '{"model": {"a": 1}, "prompt": "x"}',
      { ...OK, prompt: { nested: true } },
      { ...OK, prompt: [[1, 2], [-1]] },
      { ...OK, prompt: [99999999999] },
      { ...OK, seed: -1 },
      { ...OK, seed: 1.5 },
      { ...OK, stop: ['a', 'b', 'c', 'd', 'e'] },
      { ...OK, stream_options: 'yes' },
      { ...OK, stream: true, stream_options: { include_usage: 'yes' } },
      { ...OK, user: 42 },
      { ...OK, top_k: -1 },
      { ...OK, presence_penalty: 3 },
      { ...OK, max_tokens: 1e9 },
      { ...OK, max_tokens: 1_000_000 },
      { ...OK, max_tokens: 5, max_completion_tokens: 6 },
      { ...OK, ignore_eos: 'yes' },
      { model: MODEL, messages: 'hi' },
      { model: MODEL, messages: [] },
      { model: MODEL, messages: [null] },
      { model: MODEL, messages: [{ role: 'user' }] },
      { model: MODEL, messages: [{ role: 'tool', content: 'x' }] },
      { model: MODEL, messages: [{ role: 'user', content: [{ type: 'text' }] }] },
    ];
    for (const body of bodies) {
      for (const path of ['/v1/completions', '/v1/chat/completions']) {
        const answer = await post(`${url}${path}`, body);
        assert.ok(
          answer.status >= 400 && answer.status < 500,
          `${path} ${JSON.stringify(body)}: ${answer.status} ${answer.text}`,
        );
      }
    }
    const garbage = await rawHttp(cluster.bridges[0]!.port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 /);
  });

  it('429 busy with Retry-After when the replica is full, streaming or not', async () => {
    await injectFault(cluster.nc, 'r1', { step_delay_ms: 20 });
    try {
      const holder = post(`${url}/v1/completions`, LONG);
      await waitFor('the replica to be full', async () => {
        const view = (await (await fetch(`${url}/v1/cluster`)).json()) as {
          replicas: Array<{ active_sequences: number }>;
        };
        return view.replicas[0]?.active_sequences === 1;
      });
      const busy = await completions(OK);
      expectError(busy, 429, 'busy');
      assert.equal(errorOf(busy).type, 'overloaded_error');
      assert.ok(Number(busy.headers['retry-after']) >= 1);
      const busyStream = await completions({ ...OK, stream: true });
      expectError(busyStream, 429, 'busy');
      assert.ok(Number(busyStream.headers['retry-after']) >= 1);
      await injectFault(cluster.nc, 'r1', { step_delay_ms: 0 });
      assert.equal((await holder).status, 200);
    } finally {
      await injectFault(cluster.nc, 'r1', { step_delay_ms: 0 });
    }
  });

  it('504 when the generation outlives its deadline', async () => {
    const quick = await cluster.bridge({ generationTimeoutMs: 300 });
    await waitFor('the bridge to see the replica', async () => (await fetch(`${quick.url}/readyz`)).ok);
    await injectFault(cluster.nc, 'r1', { step_delay_ms: 20 });
    try {
      const t0 = Date.now();
      expectError(await post(`${quick.url}/v1/completions`, LONG), 504, 'deadline_exceeded');
      // The code says the deadline ended it; it must not have come before the deadline.
      assert.ok(Date.now() - t0 >= 300, `504 after ${Date.now() - t0} ms, before the 300 ms deadline`);
      await waitFor('the expired sequence to leave the replica', replicaIdle);
      // Once streaming has started, the deadline ends the stream with an error event.
      const streamed = await post(`${quick.url}/v1/completions`, { ...LONG, stream: true });
      assert.equal(streamed.status, 200);
      const events = streamed.text.trim().split('\n\n');
      const last = JSON.parse(events.at(-1)!.slice('data: '.length)) as ErrorBody;
      assert.equal(last.error.code, 'deadline_exceeded');
      assert.ok(!streamed.text.includes('[DONE]'));
    } finally {
      await injectFault(cluster.nc, 'r1', { step_delay_ms: 0 });
    }
  });

  it('503 with Retry-After when no replica serves the model; /readyz turns 503', async () => {
    await cluster.replicas[0]!.kill();
    const answer = await completions(OK);
    expectError(answer, 503, 'unavailable');
    assert.ok(Number(answer.headers['retry-after']) >= 1);
    await waitFor('readyz to turn 503', async () => (await fetch(`${url}/readyz`)).status === 503);
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: unknown[] };
    assert.deepEqual(models.data, []);
  });
});
