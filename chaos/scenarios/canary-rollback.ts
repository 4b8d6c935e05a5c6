/**
 * canary-rollback: a canary rolled back automatically under load, the product way. Replicas
 * follow `registry://tiny-gpt2@stable` (version 1); the operator starts a rollout of version 2
 * (`startRollout`, what `switchyard rollout start` calls) judged on the error rate; once the
 * collector has swapped the canary replica and given it its weight, that replica's engine fails
 * every forward pass (fault injection). The collector must see it in the evidence and roll back
 * on its own: weight 0, the canary replica swapped back to version 1, the alias untouched.
 *
 * What a client sees: a canary attempt that fails before its first token is retried on a
 * stable replica (a soft pin re-pins a request that holds no tokens); one that fails holding a
 * canary token cannot continue exactly on other weights and ends with `engine_failed`, the one
 * error allowed. Nothing else: nothing is lost or cut, and every request that completes does so
 * exactly on the version it completed on (the checker's per-version references). The faults are verified from the rollout's record
 * (the rollback decision and the failed check's evidence) and the replicas' heartbeats.
 */
import { Registry } from '../../src/registry/registry.ts';
import { startRollout } from '../../src/rollout/start.ts';
import { RolloutStore } from '../../src/rollout/store.ts';
import type { RolloutPolicy, RolloutRecord } from '../../src/rollout/types.ts';
import { injectFault } from '../../test/helpers/cluster.ts';
import { HeartbeatWatch } from '../heartbeats.ts';
import { sleep, withOperator } from './operator.ts';
import type { Scenario } from './scenario.ts';

/** How long the collector has to swap the canary in and give it weight. */
const START_TIMEOUT_MS = 60_000;
/** How long the evidence has to condemn the failing canary, and the rollback to finish. */
const ROLLBACK_TIMEOUT_MS = 60_000;
/** How long the canary replica has to report the stable version again. */
const SWAP_BACK_TIMEOUT_MS = 30_000;
const POLL_MS = 100;

/**
 * Judged on errors only, at a confidence that makes a false verdict on equal arms improbable
 * (1e-9 per look, 200 looks: ≤ 2e-7); a failing canary is condemned after a few dozen requests.
 */
export const CANARY_ROLLBACK_POLICY: RolloutPolicy = {
  checks: { error_rate: { margin: 0.3, min_samples: 20, confidence: 0.999_999_999 } },
  interval_ms: 250,
  min_step_ms: 0,
  max_looks: 200,
  on_inconclusive: 'hold',
};

async function until<T>(ms: number, get: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await get();
    if (value !== undefined) return value;
    await sleep(POLL_MS);
  }
  return undefined;
}

export const canaryRollback: Scenario = {
  name: 'canary-rollback',
  invariant:
    "A rollout of version 2 runs under load; its canary replica's engine fails every step. The collector rolls the canary back on its own evidence (error rate) — weight 0, the replica swapped back to version 1, the alias unmoved — while nothing is lost or cut: a canary attempt that fails before its first token retries on stable, one caught holding a canary token ends with engine_failed (the only error allowed), and every request that completes does so exactly on the version it completed on.",
  allowedErrors: ['engine_failed'],
  // About 20 s on 2 replicas.
  short: true,
  shape: { modelRegistry: true },
  async run(topology, ctx) {
    const models = topology.models;
    const [stable, candidate] = models?.versions ?? [];
    if (models === undefined || stable === undefined || candidate === undefined) {
      throw new Error('canary-rollback needs a registry topology with two stored versions');
    }
    await withOperator(topology, async (nc) => {
      const store = await RolloutStore.open(nc, { create: true });
      const registry = await Registry.open(nc, { create: false });
      const watches = topology.replicas.map((r) => new HeartbeatWatch(nc, r.id));
      const current = async (): Promise<RolloutRecord | undefined> => (await store.get(models.id))?.record;
      try {
        await ctx.load.nextStream();
        const started = await startRollout(nc, {
          model: models.id,
          version: candidate,
          steps: [50],
          policy: CANARY_ROLLBACK_POLICY,
          by: 'chaos canary-rollback',
        });
        const running = await until(START_TIMEOUT_MS, async () => {
          const r = await current();
          return r?.id === started.id && r.state !== 'starting' ? r : undefined;
        });
        if (running?.state !== 'running') {
          ctx.check({
            name: 'the collector starts the canary',
            ok: false,
            detail: `rollout ${started.id} is ${running?.state ?? 'still starting'} after ${START_TIMEOUT_MS} ms: ${running?.reason ?? ''}`,
          });
          return;
        }
        const canaries = running.canary_replicas;
        const record = ctx.fault({
          name: 'failing canary (every step fails)',
          target: `replica ${canaries.join(', ')} serving ${models.id}@${candidate} at ${running.weight}%`,
          startedAt: Date.now(),
        });
        for (const id of canaries) await injectFault(nc, id, { fail_steps: 1_000_000 });
        const ended = await until(ROLLBACK_TIMEOUT_MS, async () => {
          const r = await current();
          return r !== undefined && ['rolled_back', 'promoted', 'held', 'aborted'].includes(r.state)
            ? r
            : undefined;
        });
        for (const id of canaries) await injectFault(nc, id, { fail_steps: 0 }).catch(() => undefined);
        const decision = ended?.decisions.find((d) => d.action === 'rollback' && d.checks.length > 0);
        const failed = decision?.checks.find((c) => c.check === 'error_rate' && c.verdict === 'fail');
        const back = await until(SWAP_BACK_TIMEOUT_MS, () =>
          Promise.resolve(
            watches.every((w) => w.last?.modelVersion === stable) ? Date.now() - record.startedAt : undefined,
          ),
        );
        const alias = await registry.getAlias(models.id, 'stable');
        record.endedAt = Date.now();
        if (
          ended?.state === 'rolled_back' &&
          failed !== undefined &&
          back !== undefined &&
          alias?.version === stable
        ) {
          record.verified =
            `rolled back by collector ${ended.driver ?? '?'} on its evidence: ${failed.reason}; ` +
            `every replica serves ${stable} again ${back} ms after the fault; the alias still names ${stable}`;
        } else {
          ctx.check({
            name: 'the failing canary is rolled back automatically',
            ok: false,
            detail:
              `rollout ${ended?.state ?? 'unfinished'} (${ended?.reason ?? ''}); ` +
              `error_rate ${failed?.verdict ?? 'not failed'}; replicas: ${watches.map((w) => `${w.replicaId} ${w.last?.modelVersion ?? '?'}`).join(', ')}; ` +
              `alias ${alias?.version ?? '?'}`,
          });
        }
      } finally {
        for (const w of watches) w.close();
      }
    });
  },
};
