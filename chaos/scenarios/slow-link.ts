/**
 * slow-link: a tbf bandwidth cap on what the load client's NATS node sends to its clients, so
 * that streamed chunks queue in the node; nats-server may cut a client as a slow consumer. The
 * cap is removed after a while. Whether a slow consumer was cut is read from the node's log.
 */
import { netnsUnavailable } from '../netns.ts';
import { describeNode } from './nats-faults.ts';
import type { Scenario } from './scenario.ts';

/** The cap: tight for token streams; tbf drops what waits longer than `latency`. */
export const SLOW_LINK_CAP = { rate: '8kbit', burst: '2kb', latency: '100ms' } as const;
/** How long the cap stays. */
export const SLOW_LINK_MS = 10_000;

export const slowLink: Scenario = {
  name: 'slow-link',
  invariant:
    'With the load client’s NATS node sending through a tight bandwidth cap, and the cap removed, every request completes exactly; no error is allowed.',
  allowedErrors: [],
  shape: { natsInNetns: true },
  skip: netnsUnavailable,
  async run(topology, ctx) {
    const netns = topology.nats.netns;
    if (netns === undefined) throw new Error('slow-link needs the NATS nodes in network namespaces');
    // The load client prefers the last node (run.ts): its streams cross this link.
    const i = topology.nats.nodes.length - 1;
    const node = topology.nats.nodes[i]!;
    await ctx.load.nextStream();
    const record = ctx.fault({
      name: `tbf ${SLOW_LINK_CAP.rate}`,
      target: `client link of ${describeNode(topology, i)}`,
      startedAt: Date.now(),
    });
    netns.capClientLink(i, SLOW_LINK_CAP);
    const shown = netns.clientQdisc(i).trim();
    if (shown.includes('tbf')) Object.assign(record, { verified: `tc qdisc show: ${shown}` });
    await new Promise((r) => setTimeout(r, SLOW_LINK_MS));
    netns.uncapClientLink(i);
    Object.assign(record, { endedAt: Date.now() });
    const slow = node
      .log()
      .split('\n')
      .filter((l) => l.includes('Slow Consumer'));
    ctx.check({
      name: 'slow consumer cut by nats-server',
      ok: true,
      detail:
        slow.length === 0
          ? `never at ${SLOW_LINK_CAP.rate} for ${SLOW_LINK_MS} ms (node ${node.name} logged no slow consumer)`
          : `${slow.length} time(s): ${slow[0]}`,
    });
  },
};
