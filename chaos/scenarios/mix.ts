/**
 * mix: a seeded random sequence of other scenarios' faults against one topology under one load.
 * After each fault the cluster is healed (exited actors started again, NATS nodes relaunched,
 * stopped processes continued), so every fault meets a cluster with healthy replicas and the
 * invariant stays the same: every request completes exactly. The seed and the sequence it drew
 * are in the report.
 */
import type { Topology } from '../topology.ts';
import type { Scenario } from './scenario.ts';

/** Faults per mix run, drawn with the run's seed. */
export const MIX_FAULTS = 3;
/** Pause between a heal and the next fault, so the load settles on the healed cluster. */
const SETTLE_MS = 2_000;

/**
 * The mix over `candidates`: scenarios that need no topology of their own, allow no error, and
 * leave a cluster that heal() can restore.
 */
export function mixOf(candidates: readonly Scenario[]): Scenario {
  return {
    name: 'mix',
    invariant:
      `${MIX_FAULTS} faults drawn with the seed from ${candidates.map((c) => c.name).join(', ')}, ` +
      'the cluster healed after each: every request completes exactly; no error is allowed.',
    allowedErrors: [],
    disturbsCapture: candidates.some((c) => c.disturbsCapture === true),
    async run(topology, ctx) {
      const drawn: string[] = [];
      for (let i = 0; i < MIX_FAULTS && !ctx.load.over; i++) {
        const next = candidates[Math.floor(ctx.random() * candidates.length)];
        if (next === undefined) break;
        drawn.push(next.name);
        await next.run(topology, ctx);
        await heal(topology);
        await new Promise((r) => setTimeout(r, SETTLE_MS));
      }
      ctx.check({ name: 'mix sequence', ok: drawn.length > 0, detail: drawn.join(' → ') || 'nothing drawn' });
    },
  };
}

/** Continues stopped processes, relaunches NATS nodes that are down, restarts exited actors. */
export async function heal(topology: Topology): Promise<void> {
  for (const node of topology.nats.nodes) {
    if (node.child === undefined) await node.launch();
    else node.child.kill('SIGCONT');
  }
  for (const actor of [
    ...topology.routers,
    ...topology.replicas,
    ...topology.bridges,
    ...topology.collectors,
  ]) {
    if (actor.child.exitCode === null && actor.child.signalCode === null) actor.signal('SIGCONT');
    else await topology.restart(actor);
  }
}
