/**
 * Starting a rollout (what `switchyard rollout start` and `switchyard loop` call).
 * STUB: the lead implements it; the signature is the contract.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { RolloutPolicy, RolloutRecord } from './types.ts';

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

/** Writes a new rollout (state `starting`) for the driving collector; refuses while one is active. */
export async function startRollout(nc: NatsConnection, opts: StartRolloutOptions): Promise<RolloutRecord> {
  void nc;
  void opts;
  throw new Error('startRollout: not implemented yet');
}
