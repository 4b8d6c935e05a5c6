/**
 * engine-stall: one replica's engine stops taking steps while its process still answers (it
 * acknowledges the fault command and keeps sending heartbeats). The routers must see that its
 * progress stands still while it has work, fail its requests over, and resume them exactly; the
 * tokens it sends once the stall is lifted must never reach a client.
 */
import { injectFault } from '../../test/helpers/cluster.ts';
import { HeartbeatWatch } from '../heartbeats.ts';
import { deadBetween, failoversBetween, readRouters } from '../router-metrics.ts';
import { sleep, withOperator } from './operator.ts';
import type { Scenario } from './scenario.ts';

/** How long the engine stays stalled: past the routers' stuck timeout (1.5 s) and stall timeout (3 s). */
export const STALL_MS = 6_000;
/** Beats right after the injection may still report the step that was running: judge after this. */
const SETTLE_MS = 500;

export const engineStall: Scenario = {
  name: 'engine-stall',
  invariant:
    'A replica whose engine stalls while its process answers is found stuck by the routers; its requests fail over and complete exactly; its late tokens never reach a client; no error is allowed.',
  allowedErrors: [],
  async run(topology, ctx) {
    const victim = topology.replicas[Math.floor(ctx.random() * topology.replicas.length)]!;
    await withOperator(topology, async (nc) => {
      const watch = new HeartbeatWatch(nc, victim.id);
      try {
        await ctx.load.nextStream();
        const before = await readRouters(topology.routerMetrics);
        const record = ctx.fault({
          name: 'engine stall',
          target: `replica ${victim.id}`,
          startedAt: Date.now(),
        });
        await injectFault(nc, victim.id, { stall: true });
        const ackedAt = Date.now();
        await sleep(STALL_MS);
        const judgedTo = Date.now();
        await injectFault(nc, victim.id, { stall: false });
        record.endedAt = Date.now();
        // The fault took when the replica acked it, kept beating, and its step counter stood still
        // while it had work.
        const beats = watch.between(ackedAt + SETTLE_MS, judgedTo);
        const moved = watch.progressBetween(ackedAt + SETTLE_MS, judgedTo);
        const hadWork = beats.some((b) => b.activeSequences + b.queueDepth > 0);
        if (beats.length >= 2 && moved === 0 && hadWork)
          record.verified = `acked; ${beats.length} heartbeats in ${judgedTo - ackedAt - SETTLE_MS} ms, progress stood at ${beats[0]!.progress} with work`;
        else
          ctx.check({
            name: 'stall took',
            ok: false,
            detail: `${beats.length} heartbeats, progress moved ${moved}, had work: ${hadWork}`,
          });
        const after = await readRouters(topology.routerMetrics);
        const dead = deadBetween(before, after);
        ctx.check({
          name: 'routers found the stalled replica stuck',
          ok: dead > 0,
          detail: `declared dead ${dead} time(s) over the routers; failovers: ${failoversBetween(before, after)}`,
        });
      } finally {
        watch.close();
      }
    });
  },
};
