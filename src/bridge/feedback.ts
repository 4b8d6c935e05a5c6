/**
 * `POST /v1/feedback`: a rating (thumbs or a number in [0, 1]), maybe a correction, tags and a
 * comment, on one choice of a completion this bridge's API answered. Answered 202 only once
 * JetStream stored it, 503 when it cannot be stored (it is never buffered: `capture/feedback.ts`).
 *
 * Which completion: `id` is the response id (`cmpl-…`, `chatcmpl-…`: the cluster request id under
 * OpenAI's prefix) or the request id the caller chose (`x-request-id`), which is scoped to the
 * caller's key as the generation's was. Whose completion: where keys are configured, only the key
 * that made a request may leave feedback on it. That is decided from the id alone (a response id
 * names its key before the first `:`; a bare request id is always scoped to the caller's own), so
 * feedback that arrives before its completion is recorded is checked just the same. An id that
 * has a response id's prefix and a `:` is read as a response id: a caller whose own request ids
 * look like that (`cmpl-a:b`) names its requests by their response ids.
 */
import { publishFeedback } from '../capture/feedback.ts';
import { feedbackEvent, type FeedbackInput } from '../capture/feedback-input.ts';
import { REQUEST_ID_PATTERN } from '../cluster/messages/stream.ts';
import { ForbiddenError, InvalidRequestError } from '../errors/errors.ts';
import { invalidField, optionalField, type WireObject } from '../validation/fields.ts';
import type { BridgeContext, RequestContext } from './context.ts';
import { readJsonObject, sendJson } from './http-io.ts';
import { requestIdOfResponse } from './openai-response.ts';
import type { Caller } from './policy.ts';
import { scopedRequestId, tenantOf, tenantOfRequestId } from './tenancy.ts';

/** The fields a feedback body may have; any other is refused (a typo must not drop a rating). */
export const FEEDBACK_BODY_FIELDS = ['id', 'index', 'rating', 'correction', 'tags', 'comment'] as const;
/** Longest `id`: a response id is a cluster request id (128) under the longest prefix. */
const FEEDBACK_ID_MAX_LENGTH = 128 + 'chatcmpl-'.length;
/** What `id` must be, for its error message. */
const ID_SHAPE = 'a response id (cmpl-… or chatcmpl-…) or a request id matching [A-Za-z0-9._:-]{1,128}';

/** A feedback body, checked: which completion (as the caller named it) and the feedback. */
export interface FeedbackBody {
  id: string;
  input: FeedbackInput;
}

/** Reads a `POST /v1/feedback` body. Throws `InvalidRequestError` naming the field. */
export function parseFeedbackBody(body: WireObject): FeedbackBody {
  const unknown = Object.keys(body).filter((k) => !(FEEDBACK_BODY_FIELDS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new InvalidRequestError(
      `unknown field ${unknown.map((k) => `'${k.slice(0, 64)}'`).join(', ')} in the feedback; ` +
        `known: ${FEEDBACK_BODY_FIELDS.join(', ')}`,
    );
  }
  const id = optionalField(body, 'id');
  if (id === undefined) throw new InvalidRequestError(`id is required: ${ID_SHAPE}`);
  if (typeof id !== 'string' || id.length > FEEDBACK_ID_MAX_LENGTH) invalidField('id', ID_SHAPE, id);
  const clusterId = requestIdOfResponse(id);
  if (!REQUEST_ID_PATTERN.test(clusterId ?? id)) invalidField('id', ID_SHAPE, id);
  const input: FeedbackInput = {};
  const rating = optionalField(body, 'rating');
  if (rating === 'up' || rating === 'down') input.thumbs = rating;
  else if (typeof rating === 'number') input.rating = rating;
  else if (rating === undefined) {
    throw new InvalidRequestError("rating is required: 'up', 'down' or a number between 0 and 1");
  } else invalidField('rating', "'up', 'down' or a number between 0 and 1", rating);
  for (const key of ['index', 'correction', 'tags', 'comment'] as const) {
    const value = optionalField(body, key);
    // Checked by feedbackEvent, the rules `client.feedback()` shares.
    if (value !== undefined) (input as Record<string, unknown>)[key] = value;
  }
  return { id, input };
}

/**
 * The cluster request id feedback `id` is on, or `ForbiddenError` when keys are configured and
 * the id names another key's request.
 */
export function feedbackRequestId(id: string, caller: Caller, keysConfigured: boolean): string {
  const fromResponse = requestIdOfResponse(id);
  if (fromResponse === undefined) return scopedRequestId(tenantOf(caller), id);
  if (keysConfigured && tenantOfRequestId(fromResponse) !== tenantOf(caller)) {
    throw new ForbiddenError('feedback on a request made with another API key');
  }
  return fromResponse;
}

/** `POST /v1/feedback`. */
export async function feedback(bridge: BridgeContext, call: RequestContext): Promise<number> {
  const { maxBodyBytes, bodyTimeoutMs } = bridge.options;
  const body = await readJsonObject(call.req, { maxBytes: maxBodyBytes, timeoutMs: bodyTimeoutMs });
  const { id, input } = parseFeedbackBody(body);
  const keysConfigured = bridge.auth.enabled;
  const requestId = feedbackRequestId(id, call.caller, keysConfigured);
  const event = feedbackEvent(requestId, input, keysConfigured ? { apiKeyId: call.caller.keyId } : {});
  // A cheap request: it counts against the key's requests per minute (and its concurrency), no tokens.
  const admission = await bridge.limiter.admit(call.caller, 0, 1);
  try {
    await publishFeedback(bridge.client.nc, event);
  } finally {
    admission.release(0);
  }
  call.log.debug({ feedbackOn: event.request_id }, 'feedback stored');
  sendJson(call.res, 202, { id, request_id: event.request_id, status: 'stored' }, call.headers);
  return 202;
}
