/**
 * partition-routes: one NATS node loses its cluster link only. Its clients stay connected to
 * it and see nothing wrong, but they can no longer reach anything on the other side: a router on
 * that node cannot reach the other side's replicas, the load client (on another node) cannot
 * reach that router. Requests must still complete exactly, through the other side's actors.
 */
import { netnsUnavailable } from '../netns.ts';
import { checkActorsReconnected, checkRoutesFormed, describeNode, pickActorNode } from './nats-faults.ts';
import { PARTITION_MS } from './partition-node.ts';
import type { Scenario } from './scenario.ts';

export const partitionRoutes: Scenario = {
  name: 'partition-routes',
  invariant:
    'With one NATS node cut off from the others (cluster link down, client links up) and healed, every request completes exactly; no error is allowed.',
  allowedErrors: [],
  disturbsCapture: true,
  shape: { natsInNetns: true },
  skip: netnsUnavailable,
  async run(topology, ctx) {
    const netns = topology.nats.netns;
    if (netns === undefined) throw new Error('partition-routes needs the NATS nodes in network namespaces');
    const i = pickActorNode(topology, ctx);
    await ctx.load.nextStream();
    const record = ctx.fault({
      name: 'route partition',
      target: describeNode(topology, i),
      startedAt: Date.now(),
    });
    netns.setLink(i, 'cluster', false);
    const states = `cluster link ${netns.linkState(i, 'cluster')}, client link ${netns.linkState(i, 'client')}`;
    if (netns.linkState(i, 'cluster') === 'DOWN' && netns.linkState(i, 'client') === 'UP')
      Object.assign(record, { verified: `read back: ${states}` });
    await new Promise((r) => setTimeout(r, PARTITION_MS));
    const during = await Promise.all(topology.nats.nodes.map((n) => n.routeCount()));
    ctx.check({
      name: 'routes during the partition',
      ok: true,
      detail: `after ${PARTITION_MS} ms: ${topology.nats.nodes.map((n, k) => `${n.name}=${during[k] ?? 'no answer'}`).join(' ')} routes`,
    });
    netns.setLink(i, 'cluster', true);
    Object.assign(record, { endedAt: Date.now() });
    await checkRoutesFormed(topology, ctx);
    await checkActorsReconnected(topology, ctx);
  },
};
