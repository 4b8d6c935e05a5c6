/**
 * The filters of a dataset export (`switchyard dataset export --model … --since …`): checked
 * once, before any record is read, with an error that names the filter, then applied to each
 * completed record. Also the form the manifest records them in, so a manifest says exactly which
 * slice of traffic its shards hold.
 */
import { InvalidRequestError } from '../errors/errors.ts';
import { readEnum, readNumber, readOptional, readString, type WireObject } from '../validation/fields.ts';
import { UNKNOWN_VERSION } from './stats.ts';
import type { CollectedRecord } from './record.ts';

/** The finish reasons an export can select (the two a completed request ends with). */
export const DATASET_FINISH_REASONS = ['stop', 'length'] as const;

/** Which records an export holds; every filter given must match. No filter: every completed request. */
export interface DatasetFilters {
  /** The model id. */
  model?: string;
  /** The model version; `unknown` selects events that carried none (as the stats name them). */
  version?: string;
  /**
   * Requests that ended (`completion.ended_at`) at or after this time: a Date or epoch ms.
   * Inclusive, while `until` is exclusive, so that consecutive windows never share a record.
   */
  since?: Date | number;
  /** Requests that ended before this time (exclusive): a Date or epoch ms. */
  until?: Date | number;
  /** Requests whose feedback rating is at least this, in [0, 1]; requests without feedback are left out. */
  minRating?: number;
  finishReason?: (typeof DATASET_FINISH_REASONS)[number];
  /** true: only requests with feedback; false: only requests without. */
  hasFeedback?: boolean;
}

/** Filters after {@link checkDatasetFilters}: times as epoch ms. */
export interface CheckedDatasetFilters {
  model?: string;
  version?: string;
  sinceMs?: number;
  untilMs?: number;
  minRating?: number;
  finishReason?: (typeof DATASET_FINISH_REASONS)[number];
  hasFeedback?: boolean;
}

/** The manifest's form of the filters: keys in one order, times as ISO 8601 strings, none absent-but-present. */
export interface DescribedDatasetFilters {
  model?: string;
  version?: string;
  since?: string;
  until?: string;
  min_rating?: number;
  finish_reason?: string;
  has_feedback?: boolean;
}

/** The largest time a Date can hold, in ms from the epoch either way (ECMAScript's limit). */
const MAX_EPOCH_MS = 8.64e15;

function toEpochMs(name: string, value: Date | number): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || Math.abs(ms) > MAX_EPOCH_MS) {
    throw new InvalidRequestError(
      `dataset filter ${name} must be a valid date or epoch milliseconds, got ${String(value)}`,
    );
  }
  return ms;
}

/** Validates filters (a bad one is the caller's mistake: `invalid_request` naming it) and converts times. */
export function checkDatasetFilters(filters: DatasetFilters): CheckedDatasetFilters {
  const checked: CheckedDatasetFilters = {};
  if (filters.model !== undefined) checked.model = filters.model;
  if (filters.version !== undefined) checked.version = filters.version;
  if (filters.since !== undefined) checked.sinceMs = toEpochMs('since', filters.since);
  if (filters.until !== undefined) checked.untilMs = toEpochMs('until', filters.until);
  if (checked.sinceMs !== undefined && checked.untilMs !== undefined && checked.sinceMs >= checked.untilMs) {
    throw new InvalidRequestError(
      `dataset filter since (${new Date(checked.sinceMs).toISOString()}) must be before until (${new Date(checked.untilMs).toISOString()})`,
    );
  }
  if (filters.minRating !== undefined) {
    const r = filters.minRating;
    if (typeof r !== 'number' || !(r >= 0 && r <= 1)) {
      throw new InvalidRequestError(`dataset filter minRating must be a number in [0, 1], got ${String(r)}`);
    }
    checked.minRating = r;
  }
  if (filters.finishReason !== undefined) {
    if (!(DATASET_FINISH_REASONS as readonly string[]).includes(filters.finishReason)) {
      throw new InvalidRequestError(
        `dataset filter finishReason must be one of ${DATASET_FINISH_REASONS.join(', ')}, got ${String(filters.finishReason)}`,
      );
    }
    checked.finishReason = filters.finishReason;
  }
  if (filters.hasFeedback !== undefined) checked.hasFeedback = filters.hasFeedback;
  return checked;
}

/** Whether a record with a completion passes every filter. */
export function matchesFilters(record: CollectedRecord, filters: CheckedDatasetFilters): boolean {
  const event = record.completion;
  if (event === undefined) return false;
  if (filters.model !== undefined && event.model !== filters.model) return false;
  if (filters.version !== undefined && (event.model_version ?? UNKNOWN_VERSION) !== filters.version)
    return false;
  if (filters.sinceMs !== undefined || filters.untilMs !== undefined) {
    // An unreadable end time cannot be placed in the window: it is outside every window.
    const endedMs = Date.parse(event.ended_at);
    if (Number.isNaN(endedMs)) return false;
    if (filters.sinceMs !== undefined && endedMs < filters.sinceMs) return false;
    if (filters.untilMs !== undefined && endedMs >= filters.untilMs) return false;
  }
  if (
    filters.minRating !== undefined &&
    !(record.feedback !== undefined && record.feedback.rating >= filters.minRating)
  ) {
    return false;
  }
  if (filters.finishReason !== undefined && event.finish_reason !== filters.finishReason) return false;
  if (filters.hasFeedback !== undefined && (record.feedback !== undefined) !== filters.hasFeedback)
    return false;
  return true;
}

/** The filters as the manifest records them (snake_case, times as ISO strings, fixed key order). */
export function describeFilters(filters: DatasetFilters): DescribedDatasetFilters {
  const checked = checkDatasetFilters(filters);
  const out: DescribedDatasetFilters = {};
  if (checked.model !== undefined) out.model = checked.model;
  if (checked.version !== undefined) out.version = checked.version;
  if (checked.sinceMs !== undefined) out.since = new Date(checked.sinceMs).toISOString();
  if (checked.untilMs !== undefined) out.until = new Date(checked.untilMs).toISOString();
  if (checked.minRating !== undefined) out.min_rating = checked.minRating;
  if (checked.finishReason !== undefined) out.finish_reason = checked.finishReason;
  if (checked.hasFeedback !== undefined) out.has_feedback = checked.hasFeedback;
  return out;
}

/** The keys of {@link DescribedDatasetFilters}, the filters' JSON form. */
const DESCRIBED_KEYS: ReadonlySet<string> = new Set([
  'model',
  'version',
  'since',
  'until',
  'min_rating',
  'finish_reason',
  'has_feedback',
]);

/** Longest model id or version a filter names (as the capture decoder bounds `model`). */
const FILTER_NAME_MAX_LENGTH = 64;
/** Longest time a filter gives as a string (an ISO 8601 date with offset fits). */
const FILTER_TIME_MAX_LENGTH = 64;

function readTime(field: string, value: unknown): Date | number {
  if (typeof value === 'number') return readNumber(field, value, { min: -MAX_EPOCH_MS, max: MAX_EPOCH_MS });
  const text = readString(field, value, { minLength: 1, maxLength: FILTER_TIME_MAX_LENGTH });
  const ms = Date.parse(text);
  if (Number.isNaN(ms))
    throw new InvalidRequestError(
      `${field} must be an ISO 8601 time or epoch milliseconds, got ${JSON.stringify(text)}`,
    );
  return new Date(ms);
}

/**
 * Reads filters from their JSON form ({@link describeFilters}'s, as a dataset request carries
 * them over NATS; times may also be epoch ms), then checks them. An unknown key is refused rather
 * than ignored: a misspelt filter must not silently widen an export.
 */
export function readDatasetFilters(o: WireObject): DatasetFilters {
  const unknown = Object.keys(o).filter((k) => !DESCRIBED_KEYS.has(k));
  if (unknown.length > 0) {
    throw new InvalidRequestError(
      `unknown dataset filter ${unknown.join(', ')}; known: ${[...DESCRIBED_KEYS].join(', ')}`,
    );
  }
  const name = (f: string, v: unknown): string =>
    readString(f, v, { minLength: 1, maxLength: FILTER_NAME_MAX_LENGTH });
  const model = readOptional(o, 'model', name);
  const version = readOptional(o, 'version', name);
  const since = readOptional(o, 'since', readTime);
  const until = readOptional(o, 'until', readTime);
  const minRating = readOptional(o, 'min_rating', (f, v) => readNumber(f, v, { min: 0, max: 1 }));
  const finishReason = readOptional(o, 'finish_reason', (f, v) => readEnum(f, v, DATASET_FINISH_REASONS));
  const hasFeedback = readOptional(o, 'has_feedback', (f, v) => {
    if (typeof v !== 'boolean') throw new InvalidRequestError(`${f} must be a boolean, got ${String(v)}`);
    return v;
  });
  const filters: DatasetFilters = {
    ...(model !== undefined ? { model } : {}),
    ...(version !== undefined ? { version } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(minRating !== undefined ? { minRating } : {}),
    ...(finishReason !== undefined ? { finishReason } : {}),
    ...(hasFeedback !== undefined ? { hasFeedback } : {}),
  };
  checkDatasetFilters(filters);
  return filters;
}
