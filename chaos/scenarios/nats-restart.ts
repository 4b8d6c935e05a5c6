/**
 * nats-restart: SIGKILL one NATS node that routers or replicas are connected to, mid-stream,
 * keep it down, then start it again with the same config and JetStream store. Its actors
 * reconnect to the other nodes (they learnt them from the cluster's INFO), streams resume.
 */
import { pidGone, eventually } from '../verify.ts';
import {
  checkActorsReconnected,
  checkNoRespondersFast,
  checkRoutesFormed,
  describeNode,
  pickActorNode,
} from './nats-faults.ts';
import type { Scenario } from './scenario.ts';

/** How long the node stays down: longer than the actors' ping budget and the routers' liveness. */
export const NATS_DOWN_MS = 6_000;

export const natsRestart: Scenario = {
  name: 'nats-restart',
  invariant:
    'With one NATS node killed and restarted, every actor reconnects, in-flight streams resume and complete exactly, and a request nobody serves fails fast with no-responders; no error is allowed.',
  allowedErrors: [],
  disturbsCapture: true,
  short: true,
  async run(topology, ctx) {
    const i = pickActorNode(topology, ctx);
    const node = topology.nats.nodes[i]!;
    await ctx.load.nextStream();
    const pid = node.pid;
    if (pid === undefined) throw new Error(`NATS node ${node.name} has no pid`);
    const record = ctx.fault({
      name: 'SIGKILL NATS node',
      target: describeNode(topology, i),
      startedAt: Date.now(),
    });
    node.child?.kill('SIGKILL');
    const gone = await eventually(() => pidGone(pid));
    // While it is down: a survivor still answers no-responders at once.
    const survivor = topology.nats.nodes.find((n) => n !== node)!;
    await checkNoRespondersFast(survivor.url, topology, ctx);
    await new Promise((r) => setTimeout(r, NATS_DOWN_MS));
    await node.launch();
    const routes = await checkRoutesFormed(topology, ctx);
    if (gone)
      Object.assign(record, {
        verified: `pid ${pid} gone (ESRCH); relaunched as pid ${node.pid}, accepts connections; ${routes}`,
      });
    Object.assign(record, { endedAt: Date.now() });
    await checkActorsReconnected(topology, ctx);
  },
};
