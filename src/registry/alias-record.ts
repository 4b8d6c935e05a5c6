/**
 * The value of one alias key (`<id>.<alias>` in the aliases bucket): the version it points at,
 * who moved it, when and why. The bucket keeps 64 values per key, so the key's KV history is the
 * alias's history; nothing else records it.
 */
import { MODEL_VERSION_PATTERN } from '../cluster/subjects.ts';
import {
  encodeObject,
  invalidField,
  parseObject,
  readOptional,
  readPattern,
  readString,
} from '../validation/fields.ts';
import { InvalidRequestError } from '../errors/errors.ts';
import { MAX_ACTOR_LENGTH } from './version-manifest.ts';

/** Longest reason an alias move may give. */
export const MAX_REASON_LENGTH = 1_024;

/** One alias value as stored. */
export interface AliasValue {
  version: string;
  /** Who moved it (`user@host`). */
  by: string;
  /** ISO 8601. */
  at: string;
  /** Why, when the mover said; empty otherwise. */
  reason: string;
}

/** An alias value with the alias it belongs to and its KV revision (the order of moves). */
export interface AliasRecord extends AliasValue {
  id: string;
  alias: string;
  revision: number;
}

/** The one decoder of alias values; `source` (the key) names the origin in errors. */
export function decodeAliasValue(data: Uint8Array | string, source: string): AliasValue {
  try {
    const o = parseObject(data, 'alias');
    const at = readString('at', o.at, { minLength: 1, maxLength: 64 });
    if (!Number.isFinite(Date.parse(at))) invalidField('at', 'an ISO 8601 time', at);
    return {
      version: readPattern('version', o.version, MODEL_VERSION_PATTERN, '[A-Za-z0-9._-]{1,64}'),
      by: readString('by', o.by, { minLength: 1, maxLength: MAX_ACTOR_LENGTH }),
      at,
      reason: readOptional(o, 'reason', (f, v) => readString(f, v, { maxLength: MAX_REASON_LENGTH })) ?? '',
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new InvalidRequestError(`${source}: invalid alias value: ${message}`, { cause: err });
  }
}

/** Serialises an alias value. */
export function encodeAliasValue(v: AliasValue): Uint8Array {
  return encodeObject({ version: v.version, by: v.by, at: v.at, reason: v.reason });
}
