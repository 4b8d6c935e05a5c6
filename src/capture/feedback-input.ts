/**
 * Feedback as a caller gives it (a rating or thumbs, maybe a correction, tags, a comment, for one
 * choice of a completion) turned into the stored {@link FeedbackEvent}. The bridge's
 * `POST /v1/feedback` and `client.feedback()` both go through {@link feedbackEvent}, so a
 * feedback item is checked by the same rules, with the same messages, whichever way it came.
 */
import {
  THUMBS,
  choiceRequestId,
  readFeedback,
  type FeedbackEvent,
  type Thumbs,
} from '../cluster/messages/capture.ts';
import { REQUEST_ID_PATTERN } from '../cluster/messages/stream.ts';
import { InvalidRequestError } from '../errors/errors.ts';
import { readEnum, readInt, readNumber, readObject, readPattern } from '../validation/fields.ts';

/** Feedback on one completion, as its caller gives it. */
export interface FeedbackInput {
  /** A rating in [0, 1]. Give this or `thumbs`. */
  rating?: number;
  /** Thumbs up (rating 1) or down (rating 0). Give this or `rating`. */
  thumbs?: Thumbs;
  /** The choice rated, for a response with several. @default 0 */
  index?: number;
  /** The output as it should have been (at most 65,536 characters). */
  correction?: string;
  /** Free-text tags (at most 16, each 1 to 64 characters). */
  tags?: string[];
  /** A comment (at most 4,096 characters). */
  comment?: string;
}

/** What the sender adds to a caller's feedback. */
export interface FeedbackOrigin {
  /** The API key id the feedback came with (bridges with keys). */
  apiKeyId?: string;
  /** When it was received. @default now */
  receivedAt?: Date;
  /** A NATS client's inbox prefix: the requester of its requests (CompletionEvent.requester). */
  requester?: string;
}

/** Rating of each thumb. */
const THUMB_RATING: Readonly<Record<Thumbs, number>> = { up: 1, down: 0 };

/**
 * The stored feedback item for `input` on the completion with cluster request id `requestId`
 * (choice `input.index` joins the completion `choiceRequestId(requestId, index)`). Throws
 * {@link InvalidRequestError} naming the first bad field.
 */
export function feedbackEvent(
  requestId: string,
  input: FeedbackInput,
  origin: FeedbackOrigin = {},
): FeedbackEvent {
  const o = readObject('feedback', input);
  readPattern('request id', requestId, REQUEST_ID_PATTERN, '[A-Za-z0-9._:-]{1,128}');
  const index = o.index === undefined ? 0 : readInt('index', o.index, { min: 0, max: Infinity });
  if (o.rating !== undefined && o.thumbs !== undefined) {
    throw new InvalidRequestError('give rating or thumbs, not both');
  }
  let rating: number;
  let thumbs: Thumbs | undefined;
  if (o.thumbs !== undefined) {
    thumbs = readEnum('thumbs', o.thumbs, THUMBS);
    rating = THUMB_RATING[thumbs];
  } else if (o.rating !== undefined) {
    rating = readNumber('rating', o.rating, { min: 0, max: 1 });
  } else {
    throw new InvalidRequestError("rating is required: thumbs 'up' or 'down', or a number between 0 and 1");
  }
  // The stored format's own reader checks the rest (lengths of correction, tags, comment).
  return readFeedback({
    request_id: choiceRequestId(requestId, index),
    rating,
    thumbs,
    correction: o.correction,
    tags: o.tags,
    comment: o.comment,
    api_key_id: origin.apiKeyId,
    requester: origin.requester,
    received_at: (origin.receivedAt ?? new Date()).toISOString(),
  });
}
