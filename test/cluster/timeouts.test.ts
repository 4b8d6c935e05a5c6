/**
 * Timers at the cluster's edges, for real: replica and router processes through the CLI, a real
 * nats-server, the bundled model. A request waiting in a full replica's queue longer than the
 * router's stall timeout is kept alive by keepalives (overload never becomes a failover storm),
 * and a deadline further ahead than setTimeout can count does not expire at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { SwitchyardClient } from '../../src/client/client.ts';
import { freePort } from '../../src/cli/nats-server.ts';
import { MAX_TIMER_DELAY_MS } from '../../src/cluster/timers.ts';
import { Engine } from '../../src/engine/engine.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { consume, referenceRun, scrape, scrapeTotal } from '../helpers/hardening.ts';
import { TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

/**
 * The router's stall timeout in these tests. A replica sends a keepalive once a stream has been
 * quiet for 1 s, checking every 0.5 s, so keepalives come at most 1.5 s apart: the timeout must
 * be longer than that, and a queue wait of several seconds still outlasts it.
 */
const STALL_TIMEOUT_MS = 2_500;
const STEP_DELAY_MS = 100;
const TOKENS = 16;
const QUEUED = 4;

describe('timers at the edges', () => {
  let server: NatsServer;
  let client: SwitchyardClient;
  let engine: Engine;
  let actors: ActorProcess[] = [];
  let metrics: string;

  before(async () => {
    server = await NatsServer.start();
    const port = await freePort();
    metrics = `http://127.0.0.1:${port}/metrics`;
    const started = await Promise.all([
      ActorProcess.start('router', 'rt', server.url, [
        '--metrics-port',
        String(port),
        '--stall-timeout-ms',
        String(STALL_TIMEOUT_MS),
      ]),
      ActorProcess.start('replica', 'narrow', server.url, ['--max-batch-size', '1', '--max-queue', '4']),
      Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS }),
    ]);
    engine = started.pop() as Engine;
    actors = started as ActorProcess[];
    client = await SwitchyardClient.connect({ nats: { servers: server.url } });
    await waitFor('the replica alive at the router', async () => {
      return (await scrape(metrics, 'switchyard_replicas{state="alive",router="rt"}')) === 1;
    });
  });

  after(async () => {
    await client?.close();
    await engine?.stop();
    await killAll(actors);
    await server?.stop();
  });

  it('requests queued past the stall timeout all complete, with no failover (keepalives)', async () => {
    const requests: GenerateRequest[] = Array.from({ length: QUEUED }, (_, i) => ({
      model: 'tiny-gpt2',
      prompt: `Queued request ${i} waits`,
      maxTokens: TOKENS,
      temperature: 0,
      ignoreEos: true,
    }));
    const refs = await Promise.all(requests.map((r) => referenceRun(engine, r)));
    const failoversBefore = await scrapeTotal(metrics, 'switchyard_failovers_total');
    const deadBefore = await scrapeTotal(metrics, 'switchyard_replicas_declared_dead_total');
    // Batch of one, 16 steps of >= 100 ms each: the last request waits >= 4.8 s in the queue.
    await injectFault(client.nc, 'narrow', { step_delay_ms: STEP_DELAY_MS });
    try {
      const sentAt = Date.now();
      const streams = requests.map((r) => consume(client.stream(r, { timeoutMs: 60_000 })));
      const results = await Promise.all(streams.map((s) => s.done));
      for (const [i, got] of results.entries()) {
        assert.equal(got.error, undefined, `request ${i} failed: ${String(got.error)}`);
        assert.equal(got.result?.attempts, 1, `request ${i} was failed over`);
        assert.deepEqual(got.tokenIds, refs[i]!.tokenIds, `request ${i}: tokens differ from the reference`);
        assert.equal(got.text, refs[i]!.text, `request ${i}: text differs from the reference`);
      }
      // The premise, not a timing claim: step delays make some request wait past the stall timeout.
      const longestWait = Math.max(...results.map((r) => (r.firstDeltaAt ?? sentAt) - sentAt));
      assert.ok(
        longestWait > STALL_TIMEOUT_MS,
        `no request waited past the stall timeout (${longestWait} ms)`,
      );
      assert.equal(
        (await scrapeTotal(metrics, 'switchyard_failovers_total')) - failoversBefore,
        0,
        'failovers',
      );
      assert.equal(
        (await scrapeTotal(metrics, 'switchyard_replicas_declared_dead_total')) - deadBefore,
        0,
        'the busy replica was declared dead',
      );
    } finally {
      await injectFault(client.nc, 'narrow', { step_delay_ms: 0 });
    }
  });

  it('a deadline 25 days ahead (past what setTimeout can hold) does not expire at once', async () => {
    const timeoutMs = 25 * 24 * 3_600_000;
    assert.ok(timeoutMs > MAX_TIMER_DELAY_MS);
    const req: GenerateRequest = {
      model: 'tiny-gpt2',
      prompt: 'A patient client',
      maxTokens: 12,
      temperature: 0,
    };
    const ref = await referenceRun(engine, req);
    const got = await client.generate(req, { timeoutMs });
    assert.equal(got.text, ref.text);
    assert.deepEqual(got.tokenIds, ref.tokenIds);
    assert.equal(got.attempts, 1);
  });
});
