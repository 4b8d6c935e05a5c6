/**
 * Per-model-version stats over the collector's records: what `switchyard dataset stats` prints
 * and `--json` writes (one {@link VersionStats} per version, the document's fields named here
 * once). A pure function of the records, so a collector that restarts and re-reads its records
 * bucket reports the same numbers, and two collectors over the same bucket agree.
 */
import type { CompletionEvent } from '../cluster/messages/capture.ts';
import type { ErrorCode } from '../errors/errors.ts';
import { summarize, type LatencySummary } from './percentiles.ts';
import { isCompleted, type CollectedRecord } from './record.ts';

/** The version reported for events that carry no `model_version`. */
export const UNKNOWN_VERSION = 'unknown';

/**
 * The code counted for a request that ended neither completed nor with an error code (an event
 * with no finish reason and no error: none that a router publishes today, but the sum of
 * `errors` must still equal `requests − completed`).
 */
export const UNKNOWN_OUTCOME = 'unknown';

/** A key of {@link VersionStats.errors}: an error code, or {@link UNKNOWN_OUTCOME}. */
export type OutcomeCode = ErrorCode | typeof UNKNOWN_OUTCOME;

/** Latency of one version's completed requests, in milliseconds. */
export interface VersionLatencyMs {
  /** Time to first token (`ttft_ms`), over completed requests that produced a token. */
  ttft: LatencySummary;
  /**
   * Time per output token after the first: (duration − ttft) / (completion_tokens − 1), over
   * completed requests with at least 2 tokens and a TTFT.
   */
  tpot: LatencySummary;
  /** The whole request (`duration_ms`), over completed requests. */
  duration: LatencySummary;
}

/** Feedback joined to one version's requests (feedback still waiting for its completion is in no version). */
export interface VersionFeedback {
  /** Requests that have feedback (a second feedback on a request replaces the first). */
  count: number;
  /** Mean rating in [0, 1] over `count` (thumbs up is 1, down 0); null when `count` is 0. */
  rating_mean: number | null;
  thumbs_up: number;
  thumbs_down: number;
  /** Feedback items that carry a corrected output. */
  corrections: number;
}

/**
 * One model version's stats, as `switchyard dataset stats --json` prints them (an array sorted
 * by `model`, then `version`). Every field is snake_case; times are in milliseconds under
 * `latency_ms`; counts are of requests (one record per request id), not of events.
 */
export interface VersionStats {
  /** The model id the requests named. */
  model: string;
  /** The serving replica's model version, or `unknown` ({@link UNKNOWN_VERSION}) when the event had none. */
  version: string;
  /**
   * Every captured request, whatever its outcome: completed, cancelled, failed, and provisional
   * ones (a retryable error no later router replaced: the record's last word on the request).
   */
  requests: number;
  /** Requests that finished with `stop` or `length` and no error. */
  completed: number;
  /**
   * Requests that did not complete, by code: the error's code, `cancelled` for a request that
   * ended with finish reason `cancelled`. Keys sorted; the counts sum to `requests − completed`.
   */
  errors: Partial<Record<OutcomeCode, number>>;
  /** (requests − completed) / requests. */
  error_rate: number;
  /**
   * Latency percentiles of completed requests only, so that a burst of fast refusals (`busy`,
   * `unavailable`) cannot make a version look faster.
   */
  latency_ms: VersionLatencyMs;
  /** Token sums over every request, errors included (work the replicas did). */
  tokens: { prompt: number; completion: number };
  feedback: VersionFeedback;
}

/** One version's running totals while the records are read. */
interface Accumulator {
  model: string;
  version: string;
  requests: number;
  completed: number;
  errors: Map<OutcomeCode, number>;
  ttft: number[];
  tpot: number[];
  duration: number[];
  promptTokens: number;
  completionTokens: number;
  ratings: number[];
  thumbsUp: number;
  thumbsDown: number;
  corrections: number;
}

/** Why a request did not complete, as counted in {@link VersionStats.errors}. */
function outcomeCode(event: CompletionEvent): OutcomeCode {
  if (event.error !== undefined) return event.error.code;
  if (event.finish_reason === 'cancelled') return 'cancelled';
  return UNKNOWN_OUTCOME;
}

function accumulatorFor(groups: Map<string, Accumulator>, event: CompletionEvent): Accumulator {
  const version = event.model_version ?? UNKNOWN_VERSION;
  // JSON of the pair is an unambiguous key whatever characters model and version hold.
  const key = JSON.stringify([event.model, version]);
  let acc = groups.get(key);
  if (acc === undefined) {
    acc = {
      model: event.model,
      version,
      requests: 0,
      completed: 0,
      errors: new Map(),
      ttft: [],
      tpot: [],
      duration: [],
      promptTokens: 0,
      completionTokens: 0,
      ratings: [],
      thumbsUp: 0,
      thumbsDown: 0,
      corrections: 0,
    };
    groups.set(key, acc);
  }
  return acc;
}

function add(acc: Accumulator, record: CollectedRecord, event: CompletionEvent): void {
  acc.requests += 1;
  acc.promptTokens += event.prompt_tokens;
  acc.completionTokens += event.completion_tokens;
  if (isCompleted(record)) {
    acc.completed += 1;
    acc.duration.push(event.duration_ms);
    if (event.ttft_ms !== undefined) {
      acc.ttft.push(event.ttft_ms);
      if (event.completion_tokens >= 2) {
        acc.tpot.push((event.duration_ms - event.ttft_ms) / (event.completion_tokens - 1));
      }
    }
  } else {
    const code = outcomeCode(event);
    acc.errors.set(code, (acc.errors.get(code) ?? 0) + 1);
  }
  const feedback = record.feedback;
  if (feedback !== undefined) {
    acc.ratings.push(feedback.rating);
    if (feedback.thumbs === 'up') acc.thumbsUp += 1;
    if (feedback.thumbs === 'down') acc.thumbsDown += 1;
    if (feedback.correction !== undefined) acc.corrections += 1;
  }
}

/** Compares strings by code unit: the same order on every host, unlike `localeCompare`. */
function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The mean of ratings, summed in sorted order so that record order cannot change its last bit. */
function mean(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.reduce((sum, v) => sum + v, 0) / sorted.length;
}

function finish(acc: Accumulator): VersionStats {
  const errors: Partial<Record<OutcomeCode, number>> = {};
  for (const code of [...acc.errors.keys()].sort(byCodeUnit)) errors[code] = acc.errors.get(code);
  return {
    model: acc.model,
    version: acc.version,
    requests: acc.requests,
    completed: acc.completed,
    errors,
    error_rate: (acc.requests - acc.completed) / acc.requests,
    latency_ms: { ttft: summarize(acc.ttft), tpot: summarize(acc.tpot), duration: summarize(acc.duration) },
    tokens: { prompt: acc.promptTokens, completion: acc.completionTokens },
    feedback: {
      count: acc.ratings.length,
      rating_mean: mean(acc.ratings),
      thumbs_up: acc.thumbsUp,
      thumbs_down: acc.thumbsDown,
      corrections: acc.corrections,
    },
  };
}

/**
 * Stats per (model, model version) over every record that holds a completion, sorted by model
 * then version. Records with only feedback (waiting for their completion) belong to no version
 * yet and are left out.
 */
export function versionStats(records: Iterable<CollectedRecord>): VersionStats[] {
  const groups = new Map<string, Accumulator>();
  for (const record of records) {
    const event = record.completion;
    if (event === undefined) continue;
    add(accumulatorFor(groups, event), record, event);
  }
  return [...groups.values()]
    .map(finish)
    .sort((a, b) => byCodeUnit(a.model, b.model) || byCodeUnit(a.version, b.version));
}
