/**
 * Capture never gets in serving's way, and loses nothing it promises to keep: real nats-server,
 * router, replica and collector processes.
 * - JetStream unavailable (a server without it): every request still completes, the router's
 *   buffer fills and its drops are counted, nothing crashes.
 * - The collector SIGKILLed and restarted under load: every request is recorded once (nothing
 *   lost, nothing counted twice in stats or exports) and no request failed because of it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import { collectorSubject } from '../../src/cluster/subjects.ts';
import { SwitchyardClient } from '../../src/client/client.ts';
import { freePort } from '../../src/cli/nats-server.ts';
import { ActorProcess, killAll, waitFor } from '../helpers/cluster.ts';
import { scrape, waitForAliveReplicas } from '../helpers/metrics.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const MODEL = 'tiny-gpt2';

interface Stats {
  records: number;
  versions: Array<{ model: string; requests: number; completed: number }>;
}

async function stats(nc: NatsConnection): Promise<Stats> {
  const answer = await nc.request(collectorSubject('stats'), '{}', { timeout: 5_000 });
  return answer.json<Stats>();
}

describe('capture without JetStream', () => {
  let server: NatsServer;
  let client: SwitchyardClient;
  const actors: ActorProcess[] = [];
  let metrics: string;

  before(async () => {
    server = await NatsServer.start({ jetstream: false });
    const port = await freePort();
    metrics = `http://127.0.0.1:${port}/metrics`;
    actors.push(
      ...(await Promise.all([
        ActorProcess.start('router', 'rt-nojs', server.url, [
          '--metrics-port',
          String(port),
          '--capture-buffer-events',
          '4',
        ]),
        ActorProcess.start('replica', 'rep-nojs', server.url),
      ])),
    );
    client = await SwitchyardClient.connect({ nats: { servers: server.url } });
    await waitForAliveReplicas(metrics, 'rt-nojs', 1);
  });

  after(async () => {
    await client?.close();
    await killAll(actors);
    await server?.stop();
  });

  it('serves every request; the buffer keeps 4 events and counts the rest as dropped', async () => {
    const n = 16;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        client.generate({ model: MODEL, prompt: `no stream ${i}`, maxTokens: 4, temperature: 0 }),
      ),
    );
    assert.ok(results.every((r) => r.tokenIds.length === 4));
    const series = 'switchyard_capture_dropped_total{reason="buffer_full",router="rt-nojs"}';
    await waitFor('drops counted', async () => (await scrape(metrics, series)) === n - 4);
    assert.equal(await scrape(metrics, 'switchyard_capture_buffered_events{router="rt-nojs"}'), 4);
    assert.equal(actors[0]!.child.exitCode, null, 'the router is still running');
  });
});

describe('collector SIGKILLed and restarted under load', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let client: SwitchyardClient;
  const actors: ActorProcess[] = [];

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    const port = await freePort();
    actors.push(
      ...(await Promise.all([
        ActorProcess.start('collector', 'col-k', server.url, ['--ack-wait-ms', '2000']),
        ActorProcess.start('router', 'rt-k', server.url, ['--metrics-port', String(port)]),
        ActorProcess.start('replica', 'rep-k', server.url),
      ])),
    );
    nc = await connectNats({ servers: server.url });
    client = await SwitchyardClient.connect({ nc });
    await waitForAliveReplicas(`http://127.0.0.1:${port}/metrics`, 'rt-k', 1);
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await killAll(actors);
    await server?.stop();
  });

  it('records every request once: nothing lost, nothing counted twice, no request failed', async () => {
    const n = 80;
    const ids = Array.from({ length: n }, (_, i) => `kill-${i}`);
    let done = 0;
    const load = (async () => {
      const results = [];
      // Four at a time, so the kill lands while events flow.
      for (let i = 0; i < n; i += 4) {
        const batch = ids
          .slice(i, i + 4)
          .map((requestId, k) =>
            client.generate(
              { model: MODEL, prompt: `collector kill ${i + k}`, maxTokens: 6, temperature: 0 },
              { requestId },
            ),
          );
        results.push(...(await Promise.all(batch)));
        done += batch.length;
      }
      return results;
    })();
    await waitFor('a quarter of the load done', () => done >= n / 4);
    const first = actors[0]!;
    await first.kill();
    await waitFor('half of the load done while no collector runs', () => done >= n / 2);
    const second = await ActorProcess.start('collector', 'col-k', server.url, ['--ack-wait-ms', '2000']);
    actors.push(second);
    const results = await load;
    assert.equal(results.length, n, 'every request completed');
    await waitFor('every request recorded', async () => (await stats(nc)).records === n, 60_000);
    const s = await stats(nc);
    const tiny = s.versions.find((v) => v.model === MODEL)!;
    assert.equal(tiny.requests, n, 'stats count each request once');
    assert.equal(tiny.completed, n);
    // The export holds each prompt once: the same n lines (prompts are distinct).
    const page = (
      await nc.request(collectorSubject('export'), JSON.stringify({ format: 'sft', filters: {} }), {
        timeout: 10_000,
      })
    ).json<{ total: number; lines: string[] }>();
    assert.equal(page.total, n);
    const prompts = new Set(page.lines.map((l) => (JSON.parse(l) as { prompt: string }).prompt));
    assert.equal(prompts.size, n);
  });
});
