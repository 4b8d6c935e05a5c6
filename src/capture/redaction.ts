/** Placeholder until the redaction table lands (same API). */
import type { CompletionEvent } from '../cluster/messages/capture.ts';

/** Redacts an event's text fields (placeholder: returns it unchanged). */
export function redactCompletion(event: CompletionEvent): CompletionEvent {
  return event;
}
