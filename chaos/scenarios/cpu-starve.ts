/**
 * cpu-starve: one replica starved to 10% of a CPU by a cgroup quota for a while, then released.
 * A slow replica is not a dead one: while its steps move, the routers must never declare it dead
 * (their own counter says), no request fails over more than once (the client's attempt count),
 * no deadline is missed and every request completes exactly.
 */
import { randomBytes } from 'node:crypto';
import { DEFAULT_REPLICA_HEARTBEAT_INTERVAL_MS } from '../../src/replica/options.ts';
import { DEFAULT_DEAD_AFTER_MISSED } from '../../src/router/options.ts';
import { CpuLimit, cpuCgroupUnavailable } from '../cgroup.ts';
import { HeartbeatWatch } from '../heartbeats.ts';
import { deadBetween, failoversBetween, readRouters } from '../router-metrics.ts';
import { sleep, withOperator } from './operator.ts';
import type { Scenario } from './scenario.ts';

/** The share of one CPU the replica gets: 10% (issue 11). */
export const CPU_FRACTION = 0.1;
/** How long the quota holds. */
export const STARVE_MS = 15_000;
/**
 * The silence after which a router declares a replica dead for missed beats (3 beats of the
 * replica's default 200 ms interval): gaps longer than this in the detail explain a death.
 */
const DEAD_SILENCE_MS = DEFAULT_DEAD_AFTER_MISSED * DEFAULT_REPLICA_HEARTBEAT_INTERVAL_MS;
/** Time after the release for routers to finish judging beats sent under the quota. */
const JUDGE_GRACE_MS = 1_000;
/** Most replica attempts per request: the first, and at most one failover. */
const MAX_ATTEMPTS = 2;

export const cpuStarve: Scenario = {
  name: 'cpu-starve',
  invariant:
    'A replica starved to 10% CPU is never declared dead by the routers while its steps move; no request fails over more than once; no deadline is missed; every request completes exactly; no error is allowed.',
  allowedErrors: [],
  skip: cpuCgroupUnavailable,
  async run(topology, ctx) {
    const victim = topology.replicas[Math.floor(ctx.random() * topology.replicas.length)]!;
    const pid = victim.child.pid;
    if (pid === undefined) throw new Error(`replica ${victim.id} has no pid`);
    await withOperator(topology, async (nc) => {
      const watch = new HeartbeatWatch(nc, victim.id);
      try {
        await ctx.load.nextStream();
        const before = await readRouters(topology.routerMetrics);
        const record = ctx.fault({
          name: `cpu quota ${CPU_FRACTION * 100}%`,
          target: `replica ${victim.id} (pid ${pid})`,
          startedAt: Date.now(),
        });
        const limit = CpuLimit.limit(
          `sy-chaos-${victim.id}-${randomBytes(3).toString('hex')}`,
          pid,
          CPU_FRACTION,
        );
        let throttledFrom = 0;
        let throttledTo = 0;
        let held = false;
        try {
          throttledFrom = limit.throttled();
          held = limit.holds();
          await sleep(STARVE_MS);
          throttledTo = limit.throttled();
          held &&= limit.holds();
        } finally {
          limit.release();
          record.endedAt = Date.now();
        }
        if (held && throttledTo > throttledFrom)
          record.verified = `every thread in ${limit.dir}; nr_throttled ${throttledFrom} -> ${throttledTo}`;
        else
          ctx.check({
            name: 'cgroup throttled the replica',
            ok: false,
            detail: `threads held: ${held}; nr_throttled ${throttledFrom} -> ${throttledTo}`,
          });
        const moved = watch.progressBetween(record.startedAt, record.endedAt);
        ctx.check({
          name: 'its steps moved under the quota',
          ok: moved > 0,
          detail: `progress moved ${moved} in ${record.endedAt - record.startedAt} ms; longest heartbeat gap ${watch.longestSilence(record.startedAt, record.endedAt)} ms received, ${watch.longestSilence(record.startedAt, record.endedAt, true)} ms sent; sent gaps over ${DEAD_SILENCE_MS} ms: ${watch.gapsOver(record.startedAt, record.endedAt, DEAD_SILENCE_MS).join(', ') || 'none'}`,
        });
        // A router judging a late beat of the last period must have done so before the reading.
        await sleep(JUDGE_GRACE_MS);
        const after = await readRouters(topology.routerMetrics);
        const dead = deadBetween(before, after);
        ctx.check({
          name: 'never declared dead while its steps move',
          ok: dead === 0 || moved === 0,
          detail: `routers declared a replica dead ${dead} time(s); failovers: ${failoversBetween(before, after)}`,
        });
      } finally {
        watch.close();
      }
    });
    // After the load: no request used more than one failover (the client's attempt count).
    const ops = await ctx.load.done;
    const over = ops.filter((o) => o.outcome.kind === 'ok' && (o.outcome.attempts ?? 1) > MAX_ATTEMPTS);
    const counted = ops.filter((o) => o.outcome.kind === 'ok' && o.outcome.attempts !== undefined).length;
    ctx.check({
      name: 'no request failed over more than once',
      ok: over.length === 0 && counted > 0,
      detail:
        over.length === 0
          ? `${counted} completed request(s) report their attempts, none above ${MAX_ATTEMPTS}`
          : `over ${MAX_ATTEMPTS} attempts: ${over.map((o) => `${o.id} (${o.outcome.kind === 'ok' ? o.outcome.attempts : '?'})`).join(', ')}`,
    });
  },
};
