/**
 * kill-collector: SIGKILL the collector mid-load, restart it a few seconds later. Serving never
 * waits on capture, and the collector's consumer resumes where the group stopped (unacked
 * messages come back after the ack wait), so every request is recorded exactly once.
 */
import { eventually, pidGone } from '../verify.ts';
import type { Scenario } from './scenario.ts';

/** How long no collector runs: routers keep publishing into the stream meanwhile. */
export const COLLECTOR_DOWN_MS = 3_000;

export const killCollector: Scenario = {
  name: 'kill-collector',
  invariant:
    'The collector SIGKILLed mid-load and restarted: every finished request is recorded exactly once (capture check), serving is unaffected; no error is allowed.',
  allowedErrors: [],
  // 30 s more on the short profile, which must stay well under 3 minutes: full profile only.
  short: false,
  async run(topology, ctx) {
    const collector = topology.collectors[0];
    if (collector === undefined) throw new Error('the topology runs no collector');
    await ctx.load.nextStream();
    const pid = collector.child.pid;
    if (pid === undefined) throw new Error(`collector ${collector.id} has no pid`);
    const record = ctx.fault({
      name: 'SIGKILL',
      target: `collector ${collector.id} (pid ${pid})`,
      startedAt: Date.now(),
    });
    collector.signal('SIGKILL');
    if (await eventually(() => pidGone(pid))) record.verified = 'pid gone (ESRCH)';
    await new Promise((r) => setTimeout(r, COLLECTOR_DOWN_MS));
    await topology.restart(collector);
    record.endedAt = Date.now();
  },
};
