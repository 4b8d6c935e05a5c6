/**
 * TEMPORARY codec (the router branch brings the validating one): JSON in, JSON out.
 */
import { InvalidRequestError } from '../errors/errors.ts';
import type { RolloutRecord } from './types.ts';

export function decodeRolloutRecord(data: Uint8Array | string, source: string): RolloutRecord {
  try {
    const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
    return JSON.parse(text) as RolloutRecord;
  } catch (err) {
    throw new InvalidRequestError(`${source}: invalid rollout record: ${(err as Error).message}`);
  }
}

export function encodeRolloutRecord(record: RolloutRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record));
}
