/**
 * The bridge over raw HTTP: SSE framing byte by byte, request ids, cancellation when a client
 * disconnects, health and cluster endpoints, slow clients, and the drain.
 */
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Msg } from '@nats-io/nats-core';
import { HEADERS } from '../../src/cluster/headers.ts';
import { GENERATE_SUBJECT } from '../../src/cluster/subjects.ts';
import { injectFault } from '../helpers/cluster.ts';
import {
  MODEL,
  post,
  rawHttp,
  readSseEvents,
  sseEvents,
  startCluster,
  waitFor,
  watchHeartbeats,
  type TestCluster,
} from './harness.ts';

const SHORT = { model: MODEL, prompt: 'Framing', max_tokens: 6, temperature: 0, ignore_eos: true };
/** Long enough to be cancelled mid-way (with a step delay injected into the replica). */
const LONG = { model: MODEL, prompt: 'A long story', max_tokens: 300, temperature: 0, ignore_eos: true };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The bridge's request timeout here: the body and headers timeouts (500 ms) must fire first. */
const REQUEST_TIMEOUT_MS = 5_000;

describe('the bridge over raw HTTP', () => {
  let cluster: TestCluster;
  let url: string;

  before(async () => {
    cluster = await startCluster([{ id: 'r1' }], {
      bodyTimeoutMs: 500,
      headersTimeoutMs: 500,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
    });
    url = cluster.bridges[0]!.url;
  });

  after(async () => {
    await cluster?.close();
  });

  it('streams completions as SSE: data events, [DONE] last, no usage chunk unless asked', async () => {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...SHORT, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const text = await res.text();
    assert.match(text, /^(data: [^\n]+\n\n)+$/, 'every event is one data line and a blank line');
    assert.ok(text.endsWith('data: [DONE]\n\n'));
    const events = sseEvents(text);
    const chunks = events.slice(0, -1) as Array<Record<string, unknown>>;
    assert.ok(chunks.length >= 2);
    for (const chunk of chunks) {
      assert.equal(chunk.object, 'text_completion');
      assert.equal('usage' in chunk, false, 'no usage field without include_usage');
      assert.equal((chunk.choices as unknown[]).length, 1);
    }
    const last = chunks.at(-1)!.choices as Array<Record<string, unknown>>;
    assert.equal(last[0]!.finish_reason, 'length');
    assert.equal(last[0]!.text, '');
  });

  it('adds the usage chunk (choices: []) before [DONE] when stream_options.include_usage is set', async () => {
    const res = await post(`${url}/v1/chat/completions`, {
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5,
      temperature: 0,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    });
    const events = sseEvents(res.text) as Array<Record<string, unknown> | string>;
    assert.equal(events.at(-1), '[DONE]');
    const usage = events.at(-2) as Record<string, unknown>;
    assert.deepEqual(usage.choices, []);
    assert.equal((usage.usage as Record<string, number>).completion_tokens, 5);
    const chunks = events.slice(0, -2) as Array<Record<string, unknown>>;
    assert.ok(chunks.every((c) => c.usage === null));
    const first = (chunks[0]!.choices as Array<{ delta: Record<string, unknown> }>)[0]!;
    assert.equal(first.delta.role, 'assistant');
    const final = (chunks.at(-1)!.choices as Array<{ delta: unknown; finish_reason: string }>)[0]!;
    assert.deepEqual(final.delta, {});
    assert.equal(final.finish_reason, 'length');
  });

  it('scopes a valid x-request-id to the tenant for the NATS request id and echoes it; generates one when absent', async () => {
    const seen: string[] = [];
    const sub = cluster.nc.subscribe(GENERATE_SUBJECT, {
      callback: (_err, msg: Msg) => void seen.push(msg.headers?.get(HEADERS.requestId) ?? ''),
    });
    await cluster.nc.flush();
    const res = await post(`${url}/v1/completions`, SHORT, {
      'content-type': 'application/json',
      'x-request-id': 'my-req.42:a',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-request-id'], 'my-req.42:a');
    assert.equal((JSON.parse(res.text) as { id: string }).id, 'cmpl-anonymous:my-req.42:a');
    // Without keys every caller is one tenant, `anonymous`.
    await waitFor('the request on the front door', () => seen.includes('anonymous:my-req.42:a'));
    sub.unsubscribe();

    const fresh = await post(`${url}/v1/completions`, SHORT);
    assert.match(String(fresh.headers['x-request-id']), UUID);
    const bad = await post(`${url}/v1/completions`, SHORT, {
      'content-type': 'application/json',
      'x-request-id': 'has spaces/and slashes',
    });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /x-request-id must match/);
    assert.match(String(bad.headers['x-request-id']), UUID);
  });

  it('cancels the generation on the replica when the client disconnects mid-stream', async () => {
    await injectFault(cluster.nc, 'r1', { step_delay_ms: 20 });
    const hb = watchHeartbeats(cluster.nc, 'r1');
    try {
      const abort = new AbortController();
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...LONG, stream: true }),
        signal: abort.signal,
      });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      await readSseEvents(reader, 3);
      await waitFor('the replica to report the sequence', () =>
        hb.beats.some((b) => b.activeSequences === 1),
      );
      abort.abort();
      const at = hb.beats.length;
      const before = hb.beats[at - 1]!.progress;
      await waitFor('the sequence to end', () => hb.beats.slice(at).some((b) => b.activeSequences === 0));
      // Counted in the replica's engine steps, not in wall time: only a cancel ends it before
      // the 300 tokens it asked for.
      const ended = hb.beats.slice(at).find((b) => b.activeSequences === 0)!;
      assert.ok(ended.progress - before < LONG.max_tokens - 3, `${ended.progress - before} more steps`);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(
        metrics,
        /switchyard_bridge_requests_total\{route="\/v1\/completions",status="499"[^}]*\} 1/,
      );
    } finally {
      hb.stop();
      await injectFault(cluster.nc, 'r1', { step_delay_ms: 0 });
    }
  });

  it('answers /healthz, /readyz, /v1/cluster and /metrics', async () => {
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok', state: 'running' });
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(((await ready.json()) as { models: string[] }).models, [MODEL]);
    const view = (await (await fetch(`${url}/v1/cluster`)).json()) as {
      replicas: Array<Record<string, unknown>>;
      models: unknown[];
    };
    assert.deepEqual(view.models, [{ id: MODEL, versions: ['1'], replicas: 1 }]);
    const r1 = view.replicas.find((r) => r.id === 'r1')!;
    assert.equal(r1.model, MODEL);
    assert.equal(r1.version, '1');
    assert.equal(r1.state, 'ready');
    assert.equal(r1.live, true);
    assert.equal(typeof r1.active_sequences, 'number');
    const metrics = await fetch(`${url}/metrics`);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(
      await metrics.text(),
      /switchyard_bridge_requests_total\{route="\/v1\/completions",status="200"[^}]*\} \d+/,
    );
  });

  it('streams cluster snapshots on /v1/cluster/stream', async () => {
    const abort = new AbortController();
    const res = await fetch(`${url}/v1/cluster/stream`, { signal: abort.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('\n\n')) text += Buffer.from((await reader.read()).value ?? []).toString('utf8');
    abort.abort();
    const [first] = sseEvents(text.slice(0, text.indexOf('\n\n') + 2)) as Array<{
      object: string;
      replicas: unknown[];
    }>;
    assert.equal(first!.object, 'cluster');
    assert.equal(first!.replicas.length, 1);
  });

  it('cuts off a client that sends headers but never the body (408), without blocking others', async () => {
    const t0 = Date.now();
    let stuckAnswered = false;
    const stuck = rawHttp(
      cluster.bridges[0]!.port,
      'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n',
    ).finally(() => (stuckAnswered = true));
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    // An event order, not a wall clock: the health answer came while the slow client still waited.
    assert.equal(stuckAnswered, false, 'others are answered while the slow client waits');
    const answer = await stuck;
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /connection: close/i);
    assert.match(answer, /did not arrive within 500 ms/);
    assert.ok(Date.now() - t0 < REQUEST_TIMEOUT_MS, 'the body timeout fired, not the request timeout');
  });

  it('cuts off a client that never finishes its headers (408 from the headers timeout)', async () => {
    const t0 = Date.now();
    const answer = await rawHttp(
      cluster.bridges[0]!.port,
      'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n',
    );
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /"code":"invalid_request"/);
    assert.ok(Date.now() - t0 < REQUEST_TIMEOUT_MS, 'the headers timeout fired, not the request timeout');
  });

  it('serves the web page folder at / (404 JSON when a file is missing), with a CSP that forbids framing', async () => {
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(
      page.headers.get('content-security-policy') ?? '',
      /default-src 'self'.*frame-ancestors 'none'/,
    );
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.match(await page.text(), /<html/i);
    const missing = await fetch(`${url}/no-such-file.js`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'invalid_request');
    const escape = await rawHttp(
      cluster.bridges[0]!.port,
      'GET /static/../package.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    assert.match(escape, /^HTTP\/1\.1 404 /);
  });

  it('answers loopback Host names only (DNS rebinding), health probes whatever the name', async () => {
    const port = cluster.bridges[0]!.port;
    const get = (path: string, host: string): Promise<string> =>
      rawHttp(port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    for (const host of [
      'localhost',
      `localhost:${port}`,
      '127.0.0.1',
      `127.0.0.1:${port}`,
      '[::1]',
      `[::1]:${port}`,
    ]) {
      assert.match(await get('/v1/models', host), /^HTTP\/1\.1 200 /, host);
    }
    for (const host of ['evil.example', `evil.example:${port}`, 'localhost.evil.example', '']) {
      const answer = await get('/v1/models', host);
      assert.match(answer, /^HTTP\/1\.1 421 /, host);
      assert.match(answer, /does not answer the host name.*--allowed-hosts/, host);
      assert.match(await get('/', host), /^HTTP\/1\.1 421 /, `the page, ${host}`);
    }
    assert.match(await get('/healthz', 'evil.example'), /^HTTP\/1\.1 200 /);
  });

  it('answers a client that half-closes its socket after a complete request', async () => {
    const body = JSON.stringify(SHORT);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = netConnect({ port: cluster.bridges[0]!.port, host: '127.0.0.1' });
      let data = '';
      socket.setTimeout(10_000, () => reject(new Error(`no full answer; got: ${data}`)));
      socket.on('data', (d: Buffer) => (data += d.toString('utf8')));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
      socket.write(
        'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      socket.end(); // FIN: nothing more to send, still reading
    });
    assert.match(answer, /^HTTP\/1\.1 200 /);
    const json = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as {
      choices: Array<{ finish_reason: string }>;
    };
    assert.equal(json.choices[0]?.finish_reason, 'length');
  });

  it('drains on stop(): an in-flight stream finishes, then new connections are refused', async () => {
    const bridge = await cluster.bridge();
    await waitFor(
      'the second bridge to see the replica',
      async () => (await fetch(`${bridge.url}/readyz`)).ok,
    );
    await injectFault(cluster.nc, 'r1', { step_delay_ms: 20 }); // 40 tokens: about a second
    try {
      const res = await fetch(`${bridge.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          ...SHORT,
          max_tokens: 40,
          stream: true,
          stream_options: { include_usage: true },
        }),
      });
      assert.equal(res.status, 200); // the stream has started: the request is in flight
      const stopped = bridge.stop();
      // Had stop() not waited for it, closing the connections would have cut the stream short.
      const text = await res.text();
      assert.ok(text.endsWith('data: [DONE]\n\n'));
      const usage = sseEvents(text).at(-2) as { usage: { completion_tokens: number } };
      assert.equal(usage.usage.completion_tokens, 40, 'the whole generation, not a cut-off one');
      await stopped;
      assert.equal(bridge.state, 'stopped');
    } finally {
      await injectFault(cluster.nc, 'r1', { step_delay_ms: 0 });
    }
    await assert.rejects(fetch(`${bridge.url}/healthz`));
  });
});
