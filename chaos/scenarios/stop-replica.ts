/**
 * stop-replica: SIGSTOP one replica mid-stream for a while, then SIGCONT. Its requests fail over;
 * the stale tokens it sends once thawed must never reach a client (no duplicate, no gap).
 */
import { eventually, processState } from '../verify.ts';
import type { Scenario } from './scenario.ts';

/** How long the replica stays frozen: longer than the routers' liveness budget. */
export const STOP_MS = 10_000;

export const stopReplica: Scenario = {
  name: 'stop-replica',
  invariant:
    "The frozen replica's requests fail over and complete exactly; the stale tokens it sends once thawed never reach a client; no error is allowed.",
  allowedErrors: [],
  short: true,
  async run(topology, ctx) {
    const victim = topology.replicas[Math.floor(ctx.random() * topology.replicas.length)]!;
    await ctx.load.nextStream();
    const pid = victim.child.pid;
    if (pid === undefined) throw new Error(`replica ${victim.id} has no pid`);
    const record = { name: 'SIGSTOP', target: `replica ${victim.id} (pid ${pid})`, startedAt: Date.now() };
    ctx.fault(record);
    victim.signal('SIGSTOP');
    if (await eventually(() => processState(pid) === 'T'))
      Object.assign(record, { verified: 'process state T' });
    await new Promise((r) => setTimeout(r, STOP_MS));
    victim.signal('SIGCONT');
    Object.assign(record, { endedAt: Date.now() });
  },
};
