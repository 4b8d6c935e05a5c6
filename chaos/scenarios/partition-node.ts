/**
 * partition-node: a silent partition of one NATS node: its client and cluster links go down at
 * the node's end, so packets to it vanish rather than being refused. The actors on it notice
 * only through their ping budget; the scenario measures that with a probe connection that has
 * the actors' settings, then heals the links.
 */
import { netnsUnavailable } from '../netns.ts';
import {
  PING_BUDGET_MS,
  checkActorsReconnected,
  checkRoutesFormed,
  describeNode,
  detectionProbe,
  pickActorNode,
} from './nats-faults.ts';
import type { Scenario } from './scenario.ts';

/** How long the node stays cut off: longer than the ping budget and the routers' liveness. */
export const PARTITION_MS = 10_000;

export const partitionNode: Scenario = {
  name: 'partition-node',
  invariant:
    'With one NATS node silently cut off (both links down) and healed, every request completes exactly and nothing is duplicated after the heal; no error is allowed.',
  allowedErrors: [],
  disturbsCapture: true,
  shape: { natsInNetns: true },
  skip: netnsUnavailable,
  async run(topology, ctx) {
    const netns = topology.nats.netns;
    if (netns === undefined) throw new Error('partition-node needs the NATS nodes in network namespaces');
    const i = pickActorNode(topology, ctx);
    const probe = await detectionProbe(topology.nats.nodes[i]!.url, topology);
    try {
      await ctx.load.nextStream();
      const record = ctx.fault({
        name: 'silent partition',
        target: describeNode(topology, i),
        startedAt: Date.now(),
      });
      probe.mark();
      netns.setLink(i, 'client', false);
      netns.setLink(i, 'cluster', false);
      const states = `client link ${netns.linkState(i, 'client')}, cluster link ${netns.linkState(i, 'cluster')}`;
      if (netns.linkState(i, 'client') === 'DOWN' && netns.linkState(i, 'cluster') === 'DOWN')
        Object.assign(record, { verified: `read back: ${states}` });
      const detected = await probe.detected();
      ctx.check({
        name: 'dead server detected',
        ok: detected !== undefined,
        detail:
          detected === undefined
            ? 'a connection with the actors’ ping settings never noticed the silent node'
            : `a connection with the actors’ ping settings noticed after ${detected} ms (ping budget ${PING_BUDGET_MS} ms: pingInterval × maxPingOut)`,
      });
      await new Promise((r) => setTimeout(r, Math.max(0, record.startedAt + PARTITION_MS - Date.now())));
      netns.setLink(i, 'client', true);
      netns.setLink(i, 'cluster', true);
      Object.assign(record, { endedAt: Date.now() });
      await checkRoutesFormed(topology, ctx);
      await checkActorsReconnected(topology, ctx);
    } finally {
      await probe.close();
    }
  },
};
