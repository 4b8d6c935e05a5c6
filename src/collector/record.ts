/**
 * A collected record: one request's winning completion event joined with its latest feedback,
 * as the collectors keep it in the records bucket (one key per request id). Merging is a pure
 * function of the record and one stream message, idempotent and order-independent where it
 * must be: a message redelivered after a collector crash merges to the same record, so a
 * restart counts nothing twice, and feedback that arrives before its completion waits in the
 * record for it.
 */
import { BRIDGE_REQUESTER, type CompletionEvent, type FeedbackEvent } from '../cluster/messages/capture.ts';

/** One request's durable record. */
export interface CollectedRecord {
  request_id: string;
  /** The requester of a NATS client's request (see CompletionEvent.requester); absent for a bridge's. */
  requester?: string;
  /** The winning completion event (see {@link mergeCompletion}); absent while only feedback arrived. */
  completion?: CompletionEvent;
  /** Stream sequence of `completion` in the completions stream. */
  completion_seq?: number;
  /** The latest feedback (by feedback stream sequence): a second feedback replaces the first. */
  feedback?: FeedbackEvent;
  feedback_seq?: number;
}

/**
 * Whether `next` (at stream sequence `seq`) beats the record's completion. A final event beats a
 * provisional one whatever their order; between two of the same kind the later attempt wins, then
 * the earlier sequence (a final event re-published past JetStream's duplicate window is the same
 * outcome: the first copy stays).
 */
function beats(next: CompletionEvent, seq: number, record: CollectedRecord): boolean {
  const current = record.completion;
  if (current === undefined || record.completion_seq === undefined) return true;
  if (next.final !== current.final) return next.final;
  if (next.attempt !== current.attempt) return next.attempt > current.attempt;
  return next.final ? seq < record.completion_seq : seq > record.completion_seq;
}

/** The record after a completion event; the same object when the event changes nothing. */
export function mergeCompletion(
  record: CollectedRecord | undefined,
  event: CompletionEvent,
  seq: number,
): CollectedRecord {
  const base = record ?? {
    request_id: event.request_id,
    ...(event.requester !== BRIDGE_REQUESTER ? { requester: event.requester } : {}),
  };
  if (!beats(event, seq, base)) return base;
  return { ...base, completion: event, completion_seq: seq };
}

/** The record after a feedback item; the same object when it is older than the record's. */
export function mergeFeedback(
  record: CollectedRecord | undefined,
  feedback: FeedbackEvent,
  seq: number,
): CollectedRecord {
  const base = record ?? {
    request_id: feedback.request_id,
    ...(feedback.requester !== undefined ? { requester: feedback.requester } : {}),
  };
  if (base.feedback_seq !== undefined && base.feedback_seq >= seq) return base;
  return { ...base, feedback, feedback_seq: seq };
}

/** Whether a record's request completed (finish reason `stop` or `length`): what datasets hold. */
export function isCompleted(record: CollectedRecord): boolean {
  const reason = record.completion?.finish_reason;
  return record.completion?.error === undefined && (reason === 'stop' || reason === 'length');
}
