/**
 * What one request says about each check: the value a record contributes to a check, or
 * nothing when the record says nothing about it (a cancelled request has no serving outcome, a
 * request without feedback no rating). The judge (judge.ts) gathers these per arm.
 */
import type { CompletionEvent } from '../cluster/messages/capture.ts';
import type { CollectedRecord } from '../collector/record.ts';
import { isCompleted } from '../collector/record.ts';
import type { ErrorCode } from '../errors/errors.ts';
import type { CheckName, RolloutArm } from './types.ts';

/**
 * The error codes that count against the arm that served the request: the server's faults (the
 * 5xx of DESIGN.md "Errors", less deadline_exceeded, below). `internal` and `engine_failed` are
 * the version's or its replicas' own failures; `unavailable` is the arm having no live replica
 * (a canary whose replicas crash ends there); `version_unavailable` is a pinned version that
 * nobody serves any more mid-stream: a serving failure the user saw.
 *
 * Not counted, and not in the error rate's sample at all: the client's errors
 * (`invalid_request`, `unauthorized`, `forbidden`, `model_not_found`), its own limits
 * (`rate_limited`), its cancellation (`cancelled`, and a `cancelled` finish), admission refusals
 * (`busy`: a full queue is load, refused before any replica of either arm served it, and busy
 * says nothing about the version), and `deadline_exceeded`, whose rate depends on the deadlines
 * clients choose; a canary that is slower shows in the ttft and tpot checks instead. A request
 * that failed over counts as an error whatever its outcome (see {@link errorValue}).
 */
export const SERVING_FAULT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'internal',
  'engine_failed',
  'unavailable',
  'version_unavailable',
]);

/** Where a record belongs in a judged window. */
export interface RolloutWindow {
  /** The rollout's id (the completion events' `rollout.id`). */
  id: string;
  /** Epoch ms, inclusive at both ends, of the requests' `started_at`. */
  from: number;
  to: number;
}

/** The arm of a record's request in `window`, or undefined when it does not count there. */
export function armIn(record: CollectedRecord, window: RolloutWindow): RolloutArm | undefined {
  const completion = record.completion;
  if (completion?.rollout === undefined || completion.rollout.id !== window.id) return undefined;
  const started = Date.parse(completion.started_at);
  if (!(started >= window.from && started <= window.to)) return undefined;
  return completion.rollout.arm;
}

/**
 * error_rate's value: 1 when serving failed the request (an error in {@link SERVING_FAULT_CODES})
 * or needed a failover to finish it (the user waited for a second replica, and a replica that
 * fails requests over is failing), 0 when it completed without one, and nothing for requests
 * that ended by the client's doing or at admission (see SERVING_FAULT_CODES): those are left out
 * of the denominator rather than counted as successes, so a burst of cancellations on one arm
 * does not dilute its error rate.
 */
export function errorValue(completion: CompletionEvent): number | undefined {
  if (completion.failovers.length > 0) return 1;
  if (completion.error !== undefined) return SERVING_FAULT_CODES.has(completion.error.code) ? 1 : undefined;
  return completion.finish_reason === 'stop' || completion.finish_reason === 'length' ? 0 : undefined;
}

/** A check's value for one record (that counts in the window), or undefined when it has none. */
export function checkValue(check: CheckName, record: CollectedRecord): number | undefined {
  const completion = record.completion;
  if (completion === undefined) return undefined;
  switch (check) {
    case 'error_rate':
      return errorValue(completion);
    case 'ttft':
      return isCompleted(record) && completion.ttft_ms !== undefined ? completion.ttft_ms : undefined;
    case 'tpot':
      // Time per output token after the first: a model that writes longer answers is not slower
      // for it (whole duration would penalise it), and prefill stays with ttft.
      return isCompleted(record) && completion.ttft_ms !== undefined && completion.completion_tokens >= 2
        ? (completion.duration_ms - completion.ttft_ms) / (completion.completion_tokens - 1)
        : undefined;
    case 'rating':
      return record.feedback?.rating;
    case 'thumbs_up':
      return record.feedback?.thumbs === undefined ? undefined : record.feedback.thumbs === 'up' ? 1 : 0;
  }
}
