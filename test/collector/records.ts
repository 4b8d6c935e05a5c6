/** A small factory of collected records for the collector's pure-logic tests. */
import type { CompletionEvent, FeedbackEvent } from '../../src/cluster/messages/capture.ts';
import type { CollectedRecord } from '../../src/collector/record.ts';

/** Epoch ms of the factory's first request end; request `seq` ends `seq` seconds later. */
export const BASE_MS = Date.parse('2026-01-01T00:00:00.000Z');

/** A completed plain request with text; `overrides` change any field. */
export function completion(seq: number, overrides: Partial<CompletionEvent> = {}): CompletionEvent {
  return {
    v: 1,
    request_id: `req-${seq}`,
    requester: 'bridge',
    final: true,
    attempt: 1,
    router: 'rt-1',
    model: 'tiny-gpt2',
    model_version: 'v1',
    prompt: `prompt ${seq}`,
    prompt_tokens: 3,
    completion_tokens: 5,
    output_text: `output ${seq}`,
    output_token_ids: [1, 2, 3, 4, 5],
    text_complete: true,
    finish_reason: 'stop',
    sampling: { temperature: 0, seed: 1 },
    attempts: 1,
    failovers: [],
    ttft_ms: 10,
    duration_ms: 50,
    text_captured: true,
    started_at: new Date(BASE_MS + seq * 1000 - 50).toISOString(),
    ended_at: new Date(BASE_MS + seq * 1000).toISOString(),
    ...overrides,
  };
}

/** Feedback on request `req-<seq>`: thumbs up unless overridden. */
export function feedback(seq: number, overrides: Partial<FeedbackEvent> = {}): FeedbackEvent {
  return {
    v: 1,
    request_id: `req-${seq}`,
    rating: 1,
    thumbs: 'up',
    received_at: new Date(BASE_MS + seq * 1000 + 500).toISOString(),
    ...overrides,
  };
}

/**
 * The record of request `seq` (completion stream sequence `seq`), with the completion's fields
 * overridden, and feedback when given (`null` completion: a record with only feedback).
 */
export function rec(
  seq: number,
  overrides: Partial<CompletionEvent> | null = {},
  fb?: Partial<FeedbackEvent>,
): CollectedRecord {
  const request_id = overrides?.request_id ?? `req-${seq}`;
  return {
    request_id,
    ...(overrides !== null
      ? { completion: completion(seq, { request_id, ...overrides }), completion_seq: seq }
      : {}),
    ...(fb !== undefined ? { feedback: feedback(seq, { request_id, ...fb }), feedback_seq: seq } : {}),
  };
}
