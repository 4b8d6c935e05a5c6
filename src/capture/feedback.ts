/**
 * Publishing feedback: a JetStream publish to {@link FEEDBACK_SUBJECT} that settles only once the
 * stream stored it. Unlike completion events (buffered, and dropped under a long outage, so that
 * serving never waits), feedback is a person's answer to a question the caller asked them: it is
 * never buffered and never dropped. Whoever sends it (the bridge's `POST /v1/feedback`,
 * `client.feedback()`) learns at once whether it is stored, and says so to its caller (202 or 503).
 */
import { RequestError, TimeoutError, nuid, type NatsConnection } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { encodeCaptureRecord, type FeedbackEvent } from '../cluster/messages/capture.ts';
import { FEEDBACK_STREAM, FEEDBACK_SUBJECT } from '../cluster/subjects.ts';
import { UnavailableError } from '../errors/errors.ts';

/**
 * How long a feedback publish waits for JetStream's acknowledgement. A stored message is
 * acknowledged within milliseconds; a longer wait means JetStream is in trouble, and the caller
 * should hear 503 while the person who clicked is still looking.
 */
export const DEFAULT_FEEDBACK_TIMEOUT_MS = 5_000;

/**
 * The JetStream message id of one feedback publish: unique per call, so a publish that nats.js
 * repeats after a lost ack is stored once, while a second feedback on the same completion (which
 * replaces the first at the collector) is stored too.
 */
export function feedbackMsgId(event: Pick<FeedbackEvent, 'request_id'>): string {
  return `f:${event.request_id}#${nuid.next()}`;
}

/** Why a publish was not stored, in words for the caller (never a stack or a server address). */
function whyNotStored(err: unknown, timeoutMs: number): string {
  if (err instanceof TimeoutError) return `JetStream did not acknowledge it within ${timeoutMs} ms`;
  const cause = err instanceof Error ? err.cause : undefined;
  if (cause instanceof RequestError && cause.isNoResponders()) {
    return (
      `no JetStream stream takes ${FEEDBACK_SUBJECT} (JetStream is off, or the ${FEEDBACK_STREAM} ` +
      'stream does not exist yet: the collector creates it)'
    );
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * Stores `event` in the feedback stream; resolves once JetStream acknowledged it. Rejects with
 * {@link UnavailableError} ("feedback could not be stored: <why>") when it was not stored: no
 * stream, JetStream down or slow, a stream that refuses it. Nothing is kept for a later retry.
 */
export async function publishFeedback(
  nc: NatsConnection,
  event: FeedbackEvent,
  timeoutMs: number = DEFAULT_FEEDBACK_TIMEOUT_MS,
): Promise<void> {
  try {
    await jetstream(nc).publish(FEEDBACK_SUBJECT, encodeCaptureRecord(event), {
      msgID: feedbackMsgId(event),
      timeout: timeoutMs,
      // Stored by the feedback stream, not by whatever other stream may take the subject.
      expect: { streamName: FEEDBACK_STREAM },
    });
  } catch (err) {
    throw new UnavailableError(`feedback could not be stored: ${whyNotStored(err, timeoutMs)}`, {
      cause: err,
    });
  }
}
