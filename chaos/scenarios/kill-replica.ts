/** kill-replica: SIGKILL one replica mid-stream; its requests fail over and complete exactly. */
import { killMidStream } from './kill-process.ts';
import type { Scenario } from './scenario.ts';

export const killReplica: Scenario = {
  name: 'kill-replica',
  allowedErrors: [],
  async run(topology, ctx) {
    const victim = topology.replicas[Math.floor(ctx.random() * topology.replicas.length)]!;
    await killMidStream(victim, ctx);
  },
};
