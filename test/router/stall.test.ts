/**
 * One stall of a router's own event loop must not declare every replica dead: the monitor's
 * first tick after the stall ran late and gives no verdict, and the heartbeats that queued
 * meanwhile are read before the next one. Real nats-server, real replica processes (echo engines:
 * only their heartbeats matter here), the router in this process so that the test can stall its
 * loop.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startRouter, type Router } from '../../src/router/router.ts';
import { ActorProcess, killAll, waitFor } from '../helpers/cluster.ts';
import { scrape, waitForAliveReplicas } from '../helpers/metrics.ts';
import { NatsServer, freePort } from '../helpers/nats-server.ts';

/** Three times the routers' death window (3 missed 200 ms beats). */
const STALL_MS = 1_800;

describe('a router whose event loop stalls', () => {
  let server: NatsServer;
  let router: Router;
  let replicas: ActorProcess[] = [];
  let metrics: string;

  before(async () => {
    server = await NatsServer.start();
    replicas = await Promise.all([
      ActorProcess.start('replica', 'sa', server.url, ['--echo']),
      ActorProcess.start('replica', 'sb', server.url, ['--echo']),
    ]);
    const port = await freePort();
    router = await startRouter({ id: 'stalled', nats: { servers: server.url }, metricsPort: port });
    metrics = `http://127.0.0.1:${port}/metrics`;
    await waitForAliveReplicas(metrics, 'stalled', 2);
  });

  after(async () => {
    await router?.stop();
    await killAll(replicas);
    await server?.stop();
  });

  it('declares no replica dead after the stall, and still notices a real death', async () => {
    const dead = 'switchyard_replicas_declared_dead_total{router="stalled"}';
    const before = (await scrape(metrics, dead)) ?? 0;
    const until = Date.now() + STALL_MS;
    while (Date.now() < until); // the stall: nothing on this loop runs, heartbeats queue up
    // Let several ticks pass on a free loop: each sees the beats that arrived.
    await new Promise((resolve) => setTimeout(resolve, 0));
    await waitForAliveReplicas(metrics, 'stalled', 2);
    assert.equal(
      await scrape(metrics, dead),
      before,
      'a replica was declared dead because the router stalled',
    );
    // The rule still works: a replica that really dies is declared dead.
    await replicas[0]!.kill();
    await waitFor(
      'the killed replica declared dead',
      async () => ((await scrape(metrics, dead)) ?? 0) > before,
      20_000,
    );
  });
});
