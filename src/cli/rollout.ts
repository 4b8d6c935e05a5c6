/**
 * `switchyard rollout start|status|promote|abort`: canary rollouts from any host that reaches
 * NATS. The commands write the rollout's record (compare-and-set); the collectors carry it out
 * (src/rollout/driver.ts): `start` waits for a collector to swap the canary replicas,
 * `promote` and `abort` for one to move the alias or swap the replicas back. `status` reads it.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../cluster/connection.ts';
import { assertId, assertRegistryRef } from '../cluster/subjects.ts';
import { resolveRolloutConfig } from '../config/actors.ts';
import { subcommandHelp } from '../config/help.ts';
import { ROLLOUT_TABLE, type RolloutSettings } from '../config/rollout-table.ts';
import { InvalidRequestError, ModelNotFoundError, StartupError } from '../errors/errors.ts';
import { defaultActor } from '../registry/who.ts';
import { formatRollout } from '../rollout/format.ts';
import { parseSteps, readPolicyFile } from '../rollout/policy.ts';
import { startRollout } from '../rollout/start.ts';
import { RolloutStore } from '../rollout/store.ts';
import {
  FINAL_ROLLOUT_STATES,
  MAX_DECISIONS,
  type RolloutRecord,
  type RolloutState,
} from '../rollout/types.ts';
import { operatorConnection } from './local-up.ts';
import { splitArgs } from './split-args.ts';

const ACTIONS = {
  start: '<model> <version>',
  status: '[<model>]',
  promote: '<model>',
  abort: '<model>',
} as const;
type Action = keyof typeof ACTIONS;

const COUNTS: Record<Action, [number, number]> = {
  start: [2, 2],
  status: [0, 1],
  promote: [1, 1],
  abort: [1, 1],
};

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function usage(action: Action, why: string): StartupError {
  return new StartupError(
    'config',
    `rollout ${action}: ${why}; usage: switchyard rollout ${action} ${ACTIONS[action]}`,
  );
}

/** A bad option value is a usage error (exit 2), whatever its checker throws. */
function usageOf<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw new StartupError('config', (err as Error).message, { cause: err });
  }
}

/** Runs `rollout <action>`; resolves to the exit status. */
export async function rolloutCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') {
    process.stdout.write(subcommandHelp(ROLLOUT_TABLE));
    return 0;
  }
  if (!Object.hasOwn(ACTIONS, action)) {
    throw new StartupError(
      'config',
      `rollout: unknown action '${action}'; the actions are ${Object.keys(ACTIONS).join(', ')}`,
    );
  }
  const act = action as Action;
  const { positionals, flags } = splitArgs(rest, ROLLOUT_TABLE);
  const resolved = resolveRolloutConfig({ argv: flags });
  if (resolved.help) {
    process.stdout.write(subcommandHelp(ROLLOUT_TABLE));
    return 0;
  }
  const s = resolved.settings;
  const [min, max] = COUNTS[act];
  if (positionals.length < min || positionals.length > max) {
    throw usage(
      act,
      `expected ${ACTIONS[act]}, got ${positionals.length === 0 ? 'nothing' : positionals.map((p) => `'${p}'`).join(' ')}`,
    );
  }
  // Read the policy before connecting: a bad file is a usage error, whatever the cluster.
  const policy = act === 'start' && s.policy !== undefined ? await readPolicyFile(s.policy) : undefined;
  const steps = act === 'start' && s.steps !== undefined ? usageOf(() => parseSteps(s.steps!)) : undefined;
  const nats = operatorConnection('rollout', s.nats, (line) => process.stderr.write(`${line}\n`));
  const nc = await connectNats({ name: 'switchyard-rollout', ...nats });
  try {
    switch (act) {
      case 'start': {
        const record = await startRollout(nc, {
          model: positionals[0]!,
          version: positionals[1]!,
          canaryReplicas: s.canaryReplicas,
          ...(steps !== undefined ? { steps } : {}),
          ...(policy !== undefined ? { policy } : {}),
          ...(s.alias !== undefined ? { alias: s.alias } : {}),
          ...(s.by !== undefined ? { by: s.by } : {}),
        });
        if (s.json) out(JSON.stringify(record, null, 2));
        else {
          out(
            `rollout ${record.id} started: ${record.model} ${record.stable} → ${record.canary}, steps ${record.steps.join(',')}`,
          );
          out(
            `a collector swaps the canary replicas and judges each step: switchyard rollout status ${record.model}`,
          );
        }
        return 0;
      }
      case 'status':
        return await status(nc, positionals[0], s);
      case 'promote':
      case 'abort':
        await command(nc, act, positionals[0]!, s);
        return 0;
    }
  } finally {
    await nc.close();
  }
}

async function status(nc: NatsConnection, model: string | undefined, s: RolloutSettings): Promise<number> {
  if (model !== undefined) assertId('model id', model);
  const store = await RolloutStore.open(nc, { create: false, timeoutMs: s.timeoutMs });
  const records = model !== undefined ? [await store.get(model)] : await store.list();
  const found = records.filter((r) => r !== undefined).map((r) => r.record);
  if (model !== undefined && found.length === 0) {
    throw new ModelNotFoundError(`no rollout of ${model} was ever started`);
  }
  if (s.json) {
    out(JSON.stringify(model !== undefined ? found[0] : found, null, 2));
    return 0;
  }
  if (found.length === 0) out('no rollouts');
  for (const r of found) for (const line of formatRollout(r)) out(line);
  return 0;
}

/** `promote` or `abort`: the operator's decision, recorded; a collector carries it out. */
async function command(
  nc: NatsConnection,
  act: 'promote' | 'abort',
  model: string,
  s: RolloutSettings,
): Promise<void> {
  assertId('model id', model);
  if (s.alias !== undefined) assertRegistryRef('alias', s.alias);
  const store = await RolloutStore.open(nc, { create: false, timeoutMs: s.timeoutMs });
  const stored = await store.get(model);
  if (stored === undefined) throw new ModelNotFoundError(`no rollout of ${model} was ever started`);
  const r = stored.record;
  if (FINAL_ROLLOUT_STATES.has(r.state)) {
    throw new InvalidRequestError(`rollout ${r.id} of ${model} is ${r.state} already: nothing to ${act}`);
  }
  if (
    r.state === 'rolling_back' ||
    r.state === 'aborting' ||
    (act === 'promote' && r.state === 'promoting')
  ) {
    throw new InvalidRequestError(
      `rollout ${r.id} of ${model} is ${r.state}: a collector is carrying that out`,
    );
  }
  const by = s.by ?? defaultActor();
  const state: RolloutState = act === 'promote' ? 'promoting' : 'aborting';
  const now = new Date().toISOString();
  const reason = `${act === 'promote' ? 'promoted' : 'aborted'} by ${by}${s.reason !== undefined ? `: ${s.reason}` : ''}`;
  const next: RolloutRecord = {
    ...r,
    state,
    // An abort stops new canary requests now, before any collector acts.
    weight: act === 'abort' ? 0 : r.weight,
    reason,
    updated_at: now,
    decisions: [
      ...r.decisions,
      {
        at: now,
        step: r.step,
        weight: r.weight,
        look: 0,
        window: { from: r.step_started_at, to: now },
        verdict: 'inconclusive' as const,
        action: act,
        checks: [],
        by,
        reason,
      },
    ].slice(-MAX_DECISIONS),
  };
  await store.put(next, stored.revision).catch((err: unknown) => {
    throw new InvalidRequestError(
      `rollout ${r.id} changed while this command ran: look again (${String(err)})`,
      {
        cause: err,
      },
    );
  });
  out(`rollout ${r.id}: ${state}; a collector carries it out (switchyard rollout status ${model})`);
}
