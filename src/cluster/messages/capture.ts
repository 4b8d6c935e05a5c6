/**
 * The continual-learning records: a completion event (one per request that reached a router and
 * ended) and a feedback item (a rating, and maybe a correction, on one completion). Both are
 * stored in JetStream streams as JSON with snake_case fields, like every other wire message,
 * and both are documents that tools outside switchyard read (dataset exports are built from
 * them), so their field names are the stored format, written once here.
 *
 * Routers publish completion events (src/capture/publisher.ts), bridges and clients publish
 * feedback (src/capture/feedback.ts); the collector consumes both (src/collector/).
 */
import type { ChatMessage } from './params.ts';
import type { FinishReason } from './stream.ts';
import { REPLY_SUBJECT_PATTERN, REQUEST_ID_PATTERN } from './stream.ts';
import { createHash } from 'node:crypto';
import {
  invalidField,
  parseObject,
  readEnum,
  readInt,
  readNumber,
  readObject,
  readOptional,
  readPattern,
  readString,
  type WireObject,
} from '../../validation/fields.ts';
import type { ErrorCode } from '../../errors/errors.ts';
import type { RequestRollout } from '../../rollout/types.ts';
import { ROLLOUT_ID_PATTERN, ROLLOUT_ID_SHAPE } from '../../rollout/record.ts';

/** Version of the stored record formats. */
export const CAPTURE_FORMAT_VERSION = 1;

/** Most caller metadata pairs on a request (as OpenAI's `metadata`). */
export const METADATA_MAX_PAIRS = 16;
/** Longest metadata key (as OpenAI). */
export const METADATA_KEY_MAX_LENGTH = 64;
/** Longest metadata value (as OpenAI). */
export const METADATA_VALUE_MAX_LENGTH = 512;

/** Caller metadata: at most 16 string pairs. */
export type Metadata = Record<string, string>;

/** Sampling as the request was served: the effective seed included. */
export interface CapturedSampling {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  seed?: number;
  max_tokens?: number;
  stop?: string[];
}

/** One replica attempt that failed over. */
export interface CapturedFailover {
  attempt: number;
  replica: string;
  reason: string;
}

/** What kind of text a redaction replaced (the placeholder is `<KIND>`). */
export type RedactionKind = 'EMAIL' | 'PHONE' | 'CARD' | 'IBAN' | 'IP' | 'SECRET';

/**
 * One request as its router saw it end. `final` tells the collector which event wins when one
 * request ends at several routers: an event is final when its outcome is the request's last
 * (completed, cancelled, or an error nobody resends); a retryable error handed to a client that
 * may resend elsewhere is provisional. See docs/protocol.md, "Capture".
 */
export interface CompletionEvent {
  v: typeof CAPTURE_FORMAT_VERSION;
  request_id: string;
  /**
   * Whose request id it is ({@link BRIDGE_REQUESTER}, or a client's inbox prefix): routers key
   * requests by (requester, id), so two requesters' equal ids are two requests, and two records.
   */
  requester: string;
  final: boolean;
  /** The last attempt number this router made (attempts count across routers). */
  attempt: number;
  router: string;
  model: string;
  model_version?: string;
  /** sha256 of the ONNX file that produced the final tokens. */
  model_sha256?: string;
  prompt?: string;
  messages?: ChatMessage[];
  /** Prompt tokens as the replica counted them (0 when no replica tokenized it). */
  prompt_tokens: number;
  completion_tokens: number;
  /** Absent with `--capture-text=false`, and where a redaction replaced text of the output. */
  output_token_ids?: number[];
  /** Absent with `--capture-text=false`. */
  output_text?: string;
  /**
   * False when `output_text` misses text of tokens resumed from an earlier router that no replica
   * could decode for this one (a resume that had already ended).
   */
  text_complete: boolean;
  finish_reason?: FinishReason;
  error?: { code: ErrorCode; message: string };
  sampling: CapturedSampling;
  attempts: number;
  failovers: CapturedFailover[];
  ttft_ms?: number;
  duration_ms: number;
  tokens_per_s?: number;
  trace_id?: string;
  /** The API key's id (never the key), for requests that came through a bridge with keys. */
  api_key_id?: string;
  metadata?: Metadata;
  /** Kinds of text replaced by redaction, once each, sorted. */
  redacted?: RedactionKind[];
  /**
   * The canary rollout the request was split by, and the arm it was placed on (absent when no
   * rollout split it). See docs/protocol.md, "Rollouts".
   */
  rollout?: RequestRollout;
  /** Whether the text fields were captured (`--capture-text`). */
  text_captured: boolean;
  started_at: string;
  ended_at: string;
}

/** Thumbs as a rating. */
export const THUMBS = ['up', 'down'] as const;
/** A thumbs rating. */
export type Thumbs = (typeof THUMBS)[number];

/** Longest corrected output, comment, tag; most tags. */
export const FEEDBACK_LIMITS = {
  correctionChars: 65_536,
  commentChars: 4_096,
  tagChars: 64,
  tags: 16,
} as const;

/** Feedback on one completion (one choice of it). */
export interface FeedbackEvent {
  v: typeof CAPTURE_FORMAT_VERSION;
  /** The request id of the completion: the cluster's id, with the choice's suffix (see {@link choiceRequestId}). */
  request_id: string;
  /** In [0, 1]; thumbs up is 1, down 0. */
  rating: number;
  thumbs?: Thumbs;
  correction?: string;
  tags?: string[];
  comment?: string;
  api_key_id?: string;
  /**
   * The requester of the completion for a NATS client's request: its inbox prefix (see
   * {@link CompletionEvent.requester}); absent for requests that came through a bridge.
   */
  requester?: string;
  received_at: string;
}

/**
 * The requester of every request that came through a bridge: bridges scope request ids per API
 * key, and only bridges can send from bridge inboxes, so their ids share one namespace.
 */
export const BRIDGE_REQUESTER = 'bridge';

/**
 * The record key of a request: its id for a bridge's request (so HTTP feedback joins by the id
 * alone), its id and requester otherwise (so no client can shadow another's record by reusing
 * its id).
 */
export function captureKey(requestId: string, requester: string | undefined): string {
  return requester === undefined || requester === BRIDGE_REQUESTER ? requestId : `${requestId} ${requester}`;
}

/**
 * The request id of choice `index` of a request with id `requestId`: the id itself for choice 0,
 * `<id>.<index>` (the id cut to fit 128 characters) for the others. The bridge names each choice's
 * cluster request this way, and feedback on choice `index` joins the completion of this id.
 */
export function choiceRequestId(requestId: string, index: number): string {
  if (index === 0) return requestId;
  const suffix = `.${index}`;
  return requestId.slice(0, REQUEST_ID_MAX_LENGTH - suffix.length) + suffix;
}

/** Longest request id (the protocol's pattern). */
export const REQUEST_ID_MAX_LENGTH = 128;

/**
 * The JetStream message id of a completion event: the request id for a final event (so the one
 * final event is stored once, however often its router retries the publish), the request id and
 * attempt for a provisional one (so it never blocks the final event that follows).
 */
export function completionMsgId(
  event: Pick<CompletionEvent, 'request_id' | 'final' | 'attempt' | 'requester'>,
): string {
  const scope =
    event.requester === BRIDGE_REQUESTER
      ? ''
      : `@${createHash('sha256').update(event.requester).digest('hex').slice(0, 16)}`;
  const id = `c:${event.request_id}${scope}`;
  return event.final ? id : `${id}#${event.attempt}`;
}

/** Reads caller metadata: an object of at most 16 string pairs (as OpenAI's `metadata`). */
export function readMetadata(field: string, value: unknown): Metadata {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    invalidField(field, `an object of at most ${METADATA_MAX_PAIRS} string pairs`, value);
  }
  const entries = Object.entries(value as WireObject);
  if (entries.length > METADATA_MAX_PAIRS) {
    invalidField(field, `an object of at most ${METADATA_MAX_PAIRS} string pairs`, value);
  }
  const out: Metadata = {};
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > METADATA_KEY_MAX_LENGTH) {
      invalidField(`${field} key`, `1 to ${METADATA_KEY_MAX_LENGTH} characters`, k);
    }
    out[k] = readString(`${field}.${k}`, v, { maxLength: METADATA_VALUE_MAX_LENGTH });
  }
  return out;
}

/** The one decoder of feedback items; throws InvalidRequestError naming the bad field. */
export function decodeFeedback(data: Uint8Array | string): FeedbackEvent {
  const o = parseObject(data, 'feedback');
  return readFeedback(o);
}

/** Validates a feedback object already parsed (the bridge's JSON body, a stored item). */
export function readFeedback(o: WireObject): FeedbackEvent {
  const request_id = readPattern('request_id', o.request_id, REQUEST_ID_PATTERN, '[A-Za-z0-9._:-]{1,128}');
  const rating = readNumber('rating', o.rating, { min: 0, max: 1 });
  const thumbs = readOptional(o, 'thumbs', (f, v) => readEnum(f, v, THUMBS));
  const correction = readOptional(o, 'correction', (f, v) =>
    readString(f, v, { maxLength: FEEDBACK_LIMITS.correctionChars }),
  );
  const comment = readOptional(o, 'comment', (f, v) =>
    readString(f, v, { maxLength: FEEDBACK_LIMITS.commentChars }),
  );
  const tags = readOptional(o, 'tags', readTags);
  const api_key_id = readOptional(o, 'api_key_id', (f, v) => readString(f, v, { maxLength: 64 }));
  const requester = readOptional(o, 'requester', (f, v) =>
    readPattern(f, v, REPLY_SUBJECT_PATTERN, 'a NATS inbox prefix of at most 256 characters'),
  );
  const received_at = readString('received_at', o.received_at, { maxLength: 64 });
  return {
    v: CAPTURE_FORMAT_VERSION,
    request_id,
    rating,
    ...(thumbs !== undefined ? { thumbs } : {}),
    ...(correction !== undefined ? { correction } : {}),
    ...(tags !== undefined ? { tags } : {}),
    ...(comment !== undefined ? { comment } : {}),
    ...(api_key_id !== undefined ? { api_key_id } : {}),
    ...(requester !== undefined ? { requester } : {}),
    received_at,
  };
}

function readTags(field: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.length > FEEDBACK_LIMITS.tags) {
    invalidField(field, `an array of at most ${FEEDBACK_LIMITS.tags} strings`, value);
  }
  return value.map((t, i) =>
    readString(`${field}[${i}]`, t, { minLength: 1, maxLength: FEEDBACK_LIMITS.tagChars }),
  );
}

/**
 * Decodes a stored completion event. Routers are the only publishers (permissions), so this checks
 * the fields the collector keys and counts on, not every optional one.
 */
export function decodeCompletionEvent(data: Uint8Array | string): CompletionEvent {
  const o = parseObject(data, 'completion event');
  readInt('v', o.v, { min: CAPTURE_FORMAT_VERSION, max: CAPTURE_FORMAT_VERSION });
  readPattern('request_id', o.request_id, REQUEST_ID_PATTERN, '[A-Za-z0-9._:-]{1,128}');
  readString('model', o.model, { maxLength: 64 });
  readInt('attempt', o.attempt, { min: 0, max: Infinity });
  readInt('prompt_tokens', o.prompt_tokens, { min: 0, max: Infinity });
  readInt('completion_tokens', o.completion_tokens, { min: 0, max: Infinity });
  readNumber('duration_ms', o.duration_ms, { min: 0, max: Infinity });
  if (typeof o.final !== 'boolean') invalidField('final', 'a boolean', o.final);
  readString('requester', o.requester, { minLength: 1, maxLength: 256 });
  readOptional(o, 'rollout', readRequestRollout);
  return o as unknown as CompletionEvent;
}

/** The `rollout` field of a completion event: the rollout's id and the arm. */
export function readRequestRollout(field: string, value: unknown): RequestRollout {
  const o = readObject(field, value);
  return {
    id: readPattern(`${field}.id`, o.id, ROLLOUT_ID_PATTERN, ROLLOUT_ID_SHAPE),
    arm: readEnum(`${field}.arm`, o.arm, ROLLOUT_ARMS),
  };
}

/** The arms a request of a rollout is placed on. */
const ROLLOUT_ARMS = ['stable', 'canary'] as const;

/**
 * JSON bytes of a record. It never throws (the capture publisher's pump calls it): a completion
 * event's `rollout` comes from a rollout record the router decoded, so its id is valid already.
 */
export function encodeCaptureRecord(record: CompletionEvent | FeedbackEvent): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record));
}
