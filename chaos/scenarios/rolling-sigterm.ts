/**
 * rolling-sigterm: SIGTERM every replica in turn, as a rolling upgrade does. Each drains (finishes
 * or hands over its work), exits 0, is started again in its place and serves again before the
 * next one goes. Nothing a client sees may change: zero errors, every request exact.
 */
import { HeartbeatWatch } from '../heartbeats.ts';
import { eventually, pidGone } from '../verify.ts';
import { nextStreamWithin, sleep, withOperator } from './operator.ts';
import type { Scenario } from './scenario.ts';

/** How long to wait for a stream to land the next SIGTERM on (the load may already be over). */
const STREAM_WAIT_MS = 5_000;
/** How long a restarted replica has to send a `ready` heartbeat (the routers then see it). */
const READY_HEARTBEAT_TIMEOUT_MS = 10_000;
/** Time between one replica serving again and the next SIGTERM, so that work reaches it. */
const SETTLE_MS = 1_000;

export const rollingSigterm: Scenario = {
  name: 'rolling-sigterm',
  invariant:
    'Every replica is drained with SIGTERM in turn (exit 0), restarted and serving before the next; zero errors are allowed and every request completes exactly.',
  allowedErrors: [],
  async run(topology, ctx) {
    await withOperator(topology, async (nc) => {
      for (let i = 0; i < topology.replicas.length; i++) {
        const actor = topology.replicas[i]!;
        const underLoad = await nextStreamWithin(ctx, STREAM_WAIT_MS);
        const pid = actor.child.pid;
        if (pid === undefined) throw new Error(`replica ${actor.id} has no pid`);
        const record = ctx.fault({
          name: 'SIGTERM',
          target: `replica ${actor.id} (pid ${pid})${underLoad ? '' : ' (after the load)'}`,
          startedAt: Date.now(),
        });
        const code = await actor.terminate();
        const gone = await eventually(() => pidGone(pid));
        if (code === 0 && gone) record.verified = 'exit code 0, pid gone (ESRCH)';
        else
          ctx.check({
            name: `${actor.id} drained cleanly`,
            ok: false,
            detail: `exit code ${code}, pid gone: ${gone}`,
          });
        const watch = new HeartbeatWatch(nc, actor.id);
        try {
          const startedAt = Date.now();
          const next = await topology.restart(actor);
          const restartedAt = Date.now();
          const deadline = restartedAt + READY_HEARTBEAT_TIMEOUT_MS;
          while (!watch.beats.some((b) => b.state === 'ready') && Date.now() < deadline) await sleep(50);
          const ready = watch.beats.find((b) => b.state === 'ready');
          ctx.check({
            name: `${actor.id} serving again after its restart`,
            ok: ready !== undefined,
            detail:
              ready === undefined
                ? `no ready heartbeat within ${READY_HEARTBEAT_TIMEOUT_MS} ms of the restart (pid ${next.child.pid})`
                : `restart took ${restartedAt - startedAt} ms; first ready heartbeat ${ready.at - startedAt} ms after it began (pid ${next.child.pid})`,
          });
        } finally {
          watch.close();
        }
        record.endedAt = Date.now();
        await sleep(SETTLE_MS);
      }
    });
  },
};
