/**
 * fail-steps: one replica's engine fails its next few steps; every request in those batches ends
 * there with `engine_failed`. The retry budget (docs/protocol.md, "Retry budget") retries an
 * `engine_failed` attempt once on another replica, and only a second engine failure reaches the
 * client. Only one replica fails here and the others are healthy, so no request meets a second
 * failing engine: no error is allowed, and every request completes exactly.
 */
import { injectFault } from '../../test/helpers/cluster.ts';
import { failoversBetween, readRouters } from '../router-metrics.ts';
import { withOperator } from './operator.ts';
import type { Scenario } from './scenario.ts';

/** Engine steps that fail: a few batches' worth, each failing every request in its batch. */
export const FAILED_STEPS = 3;
/** How long the failing steps have to happen (the victim has work: it is served under load). */
const FAILURES_TIMEOUT_MS = 10_000;
const POLL_MS = 100;

export const failSteps: Scenario = {
  name: 'fail-steps',
  invariant:
    "A replica's engine fails its next steps; their requests are retried once on a healthy replica and complete exactly; no error is allowed (engine_failed reaches a client only after a second engine failure, and only one replica fails here).",
  allowedErrors: [],
  // The cheapest engine fault: no hold, a few seconds of failovers (the short profile runs it).
  short: true,
  async run(topology, ctx) {
    const victim = topology.replicas[Math.floor(ctx.random() * topology.replicas.length)]!;
    await withOperator(topology, async (nc) => {
      await ctx.load.nextStream();
      const before = await readRouters(topology.routerMetrics);
      const record = ctx.fault({
        name: `fail ${FAILED_STEPS} steps`,
        target: `replica ${victim.id}`,
        startedAt: Date.now(),
      });
      await injectFault(nc, victim.id, { fail_steps: FAILED_STEPS });
      // Verified by the routers' word: attempts failed over with engine_failed.
      const deadline = Date.now() + FAILURES_TIMEOUT_MS;
      let failed = 0;
      let after = before;
      while (Date.now() < deadline) {
        after = await readRouters(topology.routerMetrics);
        failed = [...after].reduce(
          (n, [id, r]) =>
            n + (r.failovers['engine_failed'] ?? 0) - (before.get(id)?.failovers['engine_failed'] ?? 0),
          0,
        );
        if (failed > 0) break;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      record.endedAt = Date.now();
      if (failed > 0)
        record.verified = `acked; routers failed over ${failed} attempt(s) with engine_failed (failovers: ${failoversBetween(before, after)})`;
      else
        ctx.check({
          name: 'steps failed',
          ok: false,
          detail: `no engine_failed failover within ${FAILURES_TIMEOUT_MS} ms`,
        });
    });
  },
};
