/** kill-replica: SIGKILL one replica mid-stream; its requests fail over and complete exactly. */
import { killMidStream } from './kill-process.ts';
import type { Scenario } from './scenario.ts';

export const killReplica: Scenario = {
  name: 'kill-replica',
  invariant: 'Every request on the killed replica fails over and completes exactly; no error is allowed.',
  allowedErrors: [],
  short: true,
  async run(topology, ctx) {
    const victim = topology.replicas[Math.floor(ctx.random() * topology.replicas.length)]!;
    await killMidStream(victim, ctx);
  },
};
