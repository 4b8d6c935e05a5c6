/**
 * Which arm of a rollout a request goes to: a pure function of its request id and the weight,
 * so every router agrees, and a resend (same id) lands on the arm its first attempt had, as
 * version pinning requires. Raising the weight only moves requests from stable to canary: a
 * request on the canary at 10% stays there at 25%.
 */
import { createHash } from 'node:crypto';
import type { RolloutArm } from './types.ts';

/** Buckets of the split: weights have two decimals of a percent. */
export const ARM_BUCKETS = 10_000;

/** The request's bucket in [0, ARM_BUCKETS): the first 32 bits of sha256(rollout id + request id). */
export function armBucket(rolloutId: string, requestId: string): number {
  const digest = createHash('sha256').update(rolloutId).update('\n').update(requestId).digest();
  return digest.readUInt32BE(0) % ARM_BUCKETS;
}

/** The arm for `weight` percent on the canary. */
export function armOf(rolloutId: string, requestId: string, weight: number): RolloutArm {
  if (weight <= 0) return 'stable';
  if (weight >= 100) return 'canary';
  return armBucket(rolloutId, requestId) < Math.round(weight * (ARM_BUCKETS / 100)) ? 'canary' : 'stable';
}
