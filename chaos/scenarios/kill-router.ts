/** kill-router: SIGKILL one router mid-stream; clients resend to the other and complete exactly. */
import { killMidStream } from './kill-process.ts';
import type { Scenario } from './scenario.ts';

export const killRouter: Scenario = {
  name: 'kill-router',
  invariant:
    'Every request on the killed router is resent by its client to the other router and completes exactly; no error is allowed.',
  allowedErrors: [],
  disturbsCapture: true,
  short: true,
  async run(topology, ctx) {
    const victim = topology.routers[Math.floor(ctx.random() * topology.routers.length)]!;
    await killMidStream(victim, ctx);
  },
};
