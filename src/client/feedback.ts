/**
 * Feedback from a NATS client: the same checks as the bridge's `POST /v1/feedback`
 * (`capture/feedback-input.ts`), then a JetStream publish that resolves only once the feedback
 * is stored (`capture/feedback.ts`). The request id is the one the client generated with: a NATS
 * client's ids are the cluster's ids (only the bridge scopes ids per API key).
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { DEFAULT_FEEDBACK_TIMEOUT_MS, publishFeedback } from '../capture/feedback.ts';
import { feedbackEvent, type FeedbackInput } from '../capture/feedback-input.ts';
import type { FeedbackEvent } from '../cluster/messages/capture.ts';

/** Options of one feedback call. */
export interface FeedbackOptions {
  /** Longest wait for JetStream to store it. @default DEFAULT_FEEDBACK_TIMEOUT_MS (5000) */
  timeoutMs?: number;
}

/** Checks and stores feedback on `requestId`; resolves with the stored item. */
export async function sendFeedback(
  nc: NatsConnection,
  requestId: string,
  input: FeedbackInput,
  opts: FeedbackOptions = {},
  requester?: string,
): Promise<FeedbackEvent> {
  const event = feedbackEvent(requestId, input, requester === undefined ? {} : { requester });
  await publishFeedback(nc, event, opts.timeoutMs ?? DEFAULT_FEEDBACK_TIMEOUT_MS);
  return event;
}
