/**
 * Starting a rollout (what `switchyard rollout start` and `switchyard loop` call): checks the
 * candidate against the registry and writes the record in state `starting`, weight 0. The
 * collector that drives rollouts (src/rollout/driver.ts) then swaps the canary replicas and
 * gives the canary its first step's weight; until one runs, the rollout waits, and
 * `rollout status` says so.
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/nats-core';
import { assertId, assertRegistryRef } from '../cluster/subjects.ts';
import { InvalidRequestError, ModelNotFoundError } from '../errors/errors.ts';
import { Registry } from '../registry/registry.ts';
import { defaultActor } from '../registry/who.ts';
import { DEFAULT_POLICY, DEFAULT_STEPS, checkSteps } from './policy.ts';
import { RolloutStore } from './store.ts';
import {
  FINAL_ROLLOUT_STATES,
  ROLLOUT_FORMAT_VERSION,
  type RolloutPolicy,
  type RolloutRecord,
} from './types.ts';

/** The alias a rollout promotes when none is named (the one `up` serves). */
export const DEFAULT_ROLLOUT_ALIAS = 'stable';
/** Most canary replicas a rollout may ask for. */
export const MAX_CANARY_REPLICAS = 64;

/** What a rollout starts with. */
export interface StartRolloutOptions {
  model: string;
  /** The candidate version (already pushed to the registry). */
  version: string;
  /** Canary weights in percent, ascending; 100 is appended when missing. @default [10, 25, 50, 100] */
  steps?: number[];
  /** @default 1 */
  canaryReplicas?: number;
  /** @default DEFAULT_POLICY */
  policy?: RolloutPolicy;
  /** The alias promotion moves. @default 'stable' */
  alias?: string;
  /** @default user@host */
  by?: string;
}

/** A rollout's id: the model, the candidate and a random suffix (ids never repeat). */
function rolloutId(model: string, version: string): string {
  return `${model}@${version}-${randomBytes(4).toString('hex')}`;
}

/** Writes a new rollout (state `starting`) for the driving collector; refuses while one is active. */
export async function startRollout(nc: NatsConnection, opts: StartRolloutOptions): Promise<RolloutRecord> {
  const { model, version } = opts;
  assertId('model id', model);
  assertRegistryRef('version', version);
  const alias = opts.alias ?? DEFAULT_ROLLOUT_ALIAS;
  assertRegistryRef('alias', alias);
  const canaryReplicas = opts.canaryReplicas ?? 1;
  if (!Number.isSafeInteger(canaryReplicas) || canaryReplicas < 1 || canaryReplicas > MAX_CANARY_REPLICAS) {
    throw new InvalidRequestError(`--canary-replicas must be an integer from 1 to ${MAX_CANARY_REPLICAS}`);
  }
  const steps = checkSteps('--steps', opts.steps ?? DEFAULT_STEPS);
  const registry = await Registry.open(nc, { create: false });
  const stable = await registry.getAlias(model, alias);
  if (stable === undefined) {
    throw new ModelNotFoundError(
      `model ${model} has no alias '${alias}' in the registry: a rollout compares a candidate with what the alias serves ` +
        `(switchyard models alias ${model} ${alias} VERSION)`,
    );
  }
  if ((await registry.getVersion(model, version)) === undefined) {
    throw new ModelNotFoundError(
      `version ${model}@${version} is not in the registry (switchyard models push FOLDER)`,
    );
  }
  if (stable.version === version) {
    throw new InvalidRequestError(
      `${model}@${version} is what '${alias}' serves already: nothing to roll out`,
    );
  }
  const store = await RolloutStore.open(nc, { create: true });
  const current = await store.get(model);
  if (current !== undefined && !FINAL_ROLLOUT_STATES.has(current.record.state)) {
    const r = current.record;
    throw new InvalidRequestError(
      `rollout ${r.id} of ${model} is ${r.state} (canary ${r.canary} at ${r.weight}%): ` +
        'promote or abort it first (switchyard rollout promote|abort ' +
        model +
        ')',
    );
  }
  const now = new Date().toISOString();
  const record: RolloutRecord = {
    v: ROLLOUT_FORMAT_VERSION,
    id: rolloutId(model, version),
    model,
    stable: stable.version,
    canary: version,
    alias,
    steps,
    step: 0,
    weight: 0,
    state: 'starting',
    canary_replicas_min: canaryReplicas,
    canary_replicas: [],
    policy: opts.policy ?? DEFAULT_POLICY,
    by: opts.by ?? defaultActor(),
    started_at: now,
    step_started_at: now,
    updated_at: now,
    reason: 'waiting for a collector to swap the canary replicas',
    decisions: [],
  };
  // Compare-and-set: of two operators starting at once, one wins and the other is told.
  await store.put(record, current?.revision ?? 0).catch((err: unknown) => {
    throw new InvalidRequestError(
      `another rollout of ${model} was written at the same time: ${String(err)}`,
      {
        cause: err,
      },
    );
  });
  return record;
}
