/**
 * `--metrics-host`: a router's and a replica's /metrics listen where they are told (a pod's must
 * be scrapable from outside it), and on loopback 127.0.0.1 by default. The test binds 127.0.0.2,
 * loopback too on Linux, so nothing here listens beyond the machine: an actor that ignored the
 * option would listen on 127.0.0.1, and 127.0.0.2 would refuse the connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  resolveReplicaConfig,
  resolveRouterConfig,
  resolveUpConfig,
  type Resolved,
} from '../../src/config/actors.ts';
import { startReplica, type Replica } from '../../src/replica/replica.ts';
import { startRouter, type Router } from '../../src/router/router.ts';
import { DEFAULT_METRICS_HOST } from '../../src/telemetry/metrics-address.ts';
import { Registry, serveMetrics } from '../../src/telemetry/prometheus.ts';
import { freePort, NatsServer } from '../helpers/nats-server.ts';

/** A second loopback address: binding it shows the host option is honoured. */
const OTHER_LOOPBACK = '127.0.0.2';

/** The settings of a resolution that was not `--help`. */
function settingsOf<T>(r: Resolved<T>): T {
  if (r.help) assert.fail('resolved to --help');
  return r.settings;
}

/** Whether `GET url` answers 200 with an exposition; false when the connection is refused. */
async function serves(url: string): Promise<boolean> {
  try {
    const res = await fetch(url);
    const text = await res.text();
    return res.status === 200 && text.includes('switchyard_event_loop_delay_seconds');
  } catch {
    return false;
  }
}

describe('--metrics-host', () => {
  it('is in the router, replica and up tables, 127.0.0.1 by default', () => {
    assert.equal(DEFAULT_METRICS_HOST, '127.0.0.1');
    const router = settingsOf(resolveRouterConfig({ argv: ['--id', 'r1'], env: {} }));
    const replica = settingsOf(resolveReplicaConfig({ argv: [], env: {} }));
    const up = settingsOf(resolveUpConfig({ argv: [], env: {} }, { cores: 2 }));
    assert.deepEqual([router.metricsHost, replica.metricsHost, up.metricsHost], Array(3).fill('127.0.0.1'));
    const given = ['--metrics-host', '0.0.0.0'];
    assert.equal(settingsOf(resolveRouterConfig({ argv: given, env: {} })).metricsHost, '0.0.0.0');
    assert.equal(settingsOf(resolveReplicaConfig({ argv: given, env: {} })).metricsHost, '0.0.0.0');
    assert.equal(settingsOf(resolveUpConfig({ argv: given, env: {} }, { cores: 2 })).metricsHost, '0.0.0.0');
    assert.equal(
      settingsOf(resolveRouterConfig({ argv: [], env: { SWITCHYARD_ROUTER_METRICS_HOST: '::' } }))
        .metricsHost,
      '::',
    );
    assert.throws(
      () => resolveReplicaConfig({ argv: ['--metrics-host', ''], env: {} }),
      /metrics-host/,
      'an empty host names the option',
    );
  });

  it('serveMetrics binds the host it is given, and loopback when none', async () => {
    const registry = new Registry();
    registry.setDefaultLabels({});
    const other = await serveMetrics(0, registry, OTHER_LOOPBACK);
    const loopback = await serveMetrics(0, registry);
    try {
      assert.deepEqual(
        [other.host, other.url],
        [OTHER_LOOPBACK, `http://${OTHER_LOOPBACK}:${other.port}/metrics`],
      );
      assert.deepEqual(
        [loopback.host, loopback.url],
        ['127.0.0.1', `http://127.0.0.1:${loopback.port}/metrics`],
      );
      assert.equal((await fetch(other.url)).status, 200);
      await assert.rejects(fetch(`http://127.0.0.1:${other.port}/metrics`), 'not on the default host');
    } finally {
      await other.close();
      await loopback.close();
    }
  });

  describe('actors', () => {
    let nats: NatsServer;
    let router: Router | undefined;
    let defaultRouter: Router | undefined;
    let replica: Replica | undefined;
    const ports = { router: 0, defaultRouter: 0, replica: 0 };

    before(async () => {
      nats = await NatsServer.start();
      ports.router = await freePort();
      ports.defaultRouter = await freePort();
      ports.replica = await freePort();
      const servers = nats.url;
      const host = ['--metrics-host', OTHER_LOOPBACK];
      const { logLevel: _r, ...routerOpts } = settingsOf(
        resolveRouterConfig({
          argv: ['--id', 'mh-router', '--metrics-port', String(ports.router), ...host, '--nats', servers],
          env: {},
        }),
      );
      const { logLevel: _p, ...replicaOpts } = settingsOf(
        resolveReplicaConfig({
          argv: [
            '--id',
            'mh-replica',
            '--echo',
            '--warmup=false',
            '--metrics-port',
            String(ports.replica),
            ...host,
          ],
          env: {},
        }),
      );
      [router, defaultRouter, replica] = await Promise.all([
        startRouter(routerOpts),
        startRouter({ id: 'mh-default', nats: { servers }, metricsPort: ports.defaultRouter }),
        startReplica({ ...replicaOpts, nats: { servers } }),
      ]);
    });

    after(async () => {
      await Promise.all([router?.stop(), defaultRouter?.stop(), replica?.stop()]);
      await nats?.stop();
    });

    it('a router and a replica started with --metrics-host serve /metrics there', async () => {
      assert.ok(await serves(`http://${OTHER_LOOPBACK}:${ports.router}/metrics`), 'router on the given host');
      assert.ok(
        await serves(`http://${OTHER_LOOPBACK}:${ports.replica}/metrics`),
        'replica on the given host',
      );
      assert.equal(await serves(`http://127.0.0.1:${ports.router}/metrics`), false, 'and not on 127.0.0.1');
    });

    it('without it, a router serves /metrics on 127.0.0.1 only', async () => {
      assert.ok(await serves(`http://127.0.0.1:${ports.defaultRouter}/metrics`));
      assert.equal(await serves(`http://${OTHER_LOOPBACK}:${ports.defaultRouter}/metrics`), false);
    });
  });
});
