/**
 * `switchyard up` end to end, as the README's first command runs it: a local nats-server,
 * a router, two replicas and the HTTP bridge as child processes; requests served over NATS and
 * HTTP; Ctrl-C stops everything.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { SwitchyardClient } from '../../src/client/client.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { killUp, startUp, type UpProcess } from './up-process.ts';

/** How long the bridge may take to see the replicas' heartbeats after the summary. */
const READY_TIMEOUT_MS = 5_000;

/** Polls `GET url` until it answers 200; returns the last status. */
async function waitFor200(url: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(url);
    await res.arrayBuffer();
    if (res.status === 200 || Date.now() > deadline) return res.status;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('switchyard up', () => {
  let up: UpProcess | undefined;
  // After a failed assertion: a second SIGINT makes up kill its children and nats-server at once.
  after(() => killUp(up));

  it('starts a cluster that serves requests, and Ctrl-C stops all of it', async () => {
    const cluster = startUp(['--replicas', '2', '--threads', '1', '--port', '0']);
    up = cluster;
    await cluster.waitFor(/Press Ctrl-C to stop/);
    const out = cluster.output();
    assert.match(out, /switchyard is up/);
    assert.match(out, /replicas\s+replica-1 \(tiny-gpt2@1, cpu\), replica-2 \(tiny-gpt2@1, cpu\)/);
    const url = /NATS\s+(nats:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    assert.ok(url, `no NATS URL in:\n${out}`);
    const http = /HTTP\s+(http:\/\/127\.0\.0\.1:(\d+))\s+\(OpenAI-compatible/.exec(out);
    assert.ok(http?.[1] !== undefined && http[2] !== undefined, `no HTTP URL in:\n${out}`);
    const base = http[1];
    assert.notEqual(Number(http[2]), 0, '--port 0: the summary prints the port the bridge got');

    // Secure by default: the NATS URL alone is refused, the printed client credential serves.
    const seed = /^\s*client\s+(\S+\.nk)\s/m.exec(out)?.[1];
    assert.ok(seed, `no client credential in:\n${out}`);
    assert.match(out, /^\s*operator\s+\S+\.nk\s/m, 'the summary prints the operator credential');
    await assert.rejects(connectNats({ servers: url, maxReconnectAttempts: 0 }), /refused|credentials/i);
    const client = await SwitchyardClient.connect({ nats: { servers: url, nkeySeedFile: seed } });
    try {
      const results = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          client.generate({ model: 'tiny-gpt2', prompt: `up test ${i}`, maxTokens: 8, temperature: 0 }),
        ),
      );
      for (const r of results) {
        assert.equal(r.tokenIds.length, 8);
        assert.equal(r.finishReason, 'length');
      }
    } finally {
      await client.close();
    }

    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, 'ok');
    assert.equal(await waitFor200(`${base}/readyz`, READY_TIMEOUT_MS), 200, '/readyz');
    const models = (await (await fetch(`${base}/v1/models`)).json()) as { data: Array<{ id: string }> };
    assert.deepEqual(
      models.data.map((m) => m.id),
      ['tiny-gpt2'],
    );
    const completion = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-gpt2', prompt: 'up over HTTP', max_tokens: 8, temperature: 0 }),
    });
    assert.equal(completion.status, 200);
    const body = (await completion.json()) as {
      choices: Array<{ text: string; finish_reason: string }>;
      usage: { completion_tokens: number };
    };
    assert.equal(body.usage.completion_tokens, 8);
    assert.equal(body.choices[0]?.finish_reason, 'length');
    // Every actor's /metrics is listed in the summary and serves after traffic went through it.
    const metricsLine = /^\s*metrics\s+(.+)$/m.exec(out)?.[1] ?? '';
    const metricsUrls = [...metricsLine.matchAll(/(\S+) (http:\/\/127\.0\.0\.1:\d+\/metrics)/g)];
    assert.deepEqual(
      metricsUrls.map((m) => m[1]).sort(),
      ['bridge-1', 'collector-1', 'replica-1', 'replica-2', 'router-1'],
      `metrics line: ${metricsLine}`,
    );
    const routerUrl = metricsUrls.find((m) => m[1] === 'router-1')?.[2] as string;
    assert.match(
      await (await fetch(routerUrl)).text(),
      /^switchyard_requests_total\{model="tiny-gpt2",code="ok",router="router-1"\} (\d+)$/m,
    );
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await page.text(), /<html/i);

    const exited = new Promise<number | null>((resolve) => cluster.child.once('exit', resolve));
    cluster.child.kill('SIGINT');
    const printed = (): string => cluster.output();
    assert.equal(await exited, 0, `up did not exit 0 after Ctrl-C (every child must exit 0):\n${printed()}`);
    const stopped = printed().slice(printed().indexOf('up: stopping'));
    for (const actor of ['bridge bridge-1', 'router router-1', 'replica replica-1', 'replica replica-2'])
      assert.match(stopped, new RegExp(`^${actor}: stopped$`, 'm'));
    assert.ok(
      stopped.indexOf('bridge bridge-1: stopped') < stopped.indexOf('router router-1: SIGTERM'),
      `the bridge stops before the routers:\n${stopped}`,
    );
    // The local nats-server and the bridge went with it.
    await assert.rejects(connectNats({ servers: url, connectTimeoutMs: 500, maxReconnectAttempts: 0 }));
    await assert.rejects(fetch(`${base}/healthz`), 'the HTTP port refuses connections');
  });
});
