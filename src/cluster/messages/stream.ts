/**
 * The messages of a streamed reply (ack, chunk, end; an error travels in headers only) and the
 * cancel message. The kind of each reply message travels in the `Sy-Kind` header, so a receiver
 * picks the decoder without parsing the body first.
 */
import { ID_PATTERN, MODEL_VERSION_PATTERN } from '../subjects.ts';
import {
  encodeObject,
  invalidField,
  parseObject,
  readEnum,
  readInt,
  readIntArray,
  readObject,
  readOptional,
  readPattern,
  readString,
  type NumberRule,
  type WireObject,
} from '../../validation/fields.ts';
import { SEED_MAX, TOKEN_ID_MAX } from './params.ts';

/**
 * The kinds of message on a reply inbox, in the order a stream carries them. `keepalive` (empty
 * body, no seq) may come at any time between the ack and the end: a responder that has nothing
 * to send yet (the request waits in a live replica's queue, or its prefill runs) says it still
 * owns the stream, so a requester's idle timer measures silence, not queueing.
 */
export const STREAM_KINDS = ['ack', 'chunk', 'end', 'error', 'keepalive'] as const;

/** One of {@link STREAM_KINDS}; the value of the `Sy-Kind` header. */
export type StreamKind = (typeof STREAM_KINDS)[number];

/** Why a stream ended without error. */
export const FINISH_REASONS = ['stop', 'length', 'cancelled'] as const;

/** One of {@link FINISH_REASONS}: `stop` (EOS or a stop sequence), `length` (max_tokens), `cancelled`. */
export type FinishReason = (typeof FINISH_REASONS)[number];

/** Most attempts a request can take; bounds a counter that a buggy peer could otherwise inflate. */
export const ATTEMPT_MAX = 1_000;
/**
 * How often a responder with nothing else to send tells its requester it still owns the stream.
 * Well below routers' stall timeout (DEFAULT_STALL_TIMEOUT_MS, 3 s), so that a request waiting in
 * a loaded replica's queue never looks stalled.
 */
export const STREAM_KEEPALIVE_INTERVAL_MS = 1_000;
/** Longest cancel reason kept; it is for logs only. */
export const CANCEL_REASON_MAX_LENGTH = 256;
/**
 * Request ids are idempotency keys chosen by clients; a bounded, printable alphabet keeps them
 * safe in headers, logs and metrics labels.
 */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/**
 * A reply subject as a cancel carries it: visible ASCII without NATS wildcards, at most 256
 * characters (an inbox prefix, a NUID and a token fit well within it).
 */
export const REPLY_SUBJECT_PATTERN = /^[\x21-\x29\x2b-\x3d\x3f-\x7e]{1,256}$/;
/** Longest text of one chunk in characters. */
export const CHUNK_TEXT_MAX_LENGTH = 65_536;
/** Most token ids in one chunk. */
export const CHUNK_MAX_TOKENS = 4_096;

const ATTEMPT: NumberRule = { min: 1, max: ATTEMPT_MAX };
const COUNT: NumberRule = { min: 0, max: Infinity };

/** First message of a stream: the responder accepted the request and owns it now. */
export interface Ack {
  /** Id of the responder (router or replica): where a cancel goes. */
  by: string;
  /** Effective sampling seed (a router picks one when the client gave none, so failover replays it). */
  seed?: number;
  /** Which attempt this responder serves (1-based). */
  attempt?: number;
  /**
   * The max_tokens the responder settled on (a replica fills in the default when the request
   * gave none), so a failover resumes with exactly the tokens that remain.
   */
  maxTokens?: number;
  /**
   * The model version the request is pinned to (a router's ack): a resend that carries tokens
   * names it, so the request resumes only on that version.
   */
  modelVersion?: string;
}

/** Some generated tokens and their text, in order. */
export interface Chunk {
  /** 0-based, contiguous within one stream: a gap or repeat is a protocol error. */
  seq: number;
  /** The attempt (1-based) that produced these tokens; grows after a failover. */
  attempt: number;
  tokenIds: number[];
  /** Detokenised text of exactly these tokens (may be empty while a multi-byte character is incomplete). */
  text: string;
  /** Effective seed, carried by the first chunk of a sampled request. */
  seed?: number;
  /**
   * The max_tokens the responder settled on (the engine's default when the request gave none),
   * carried by the first chunk, so that a resume elsewhere ends where this run would have. Counts
   * from this stream's start (tokens resumed into it are not included).
   */
  maxTokens?: number;
  /**
   * The version that produced the tokens, carried by the first chunk a router forwards: the
   * pin is final once tokens flow (before that a router may re-pin a request that has none).
   */
  modelVersion?: string;
}

/** Token counts as OpenAI reports them. */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

/** Last message of a successful stream: exactly one per stream. */
export interface End {
  /** The seq after the last chunk, i.e. the number of chunks sent, so a receiver can tell none is missing. */
  seq: number;
  attempt: number;
  finishReason: FinishReason;
  usage: Usage;
  /** How many attempts the request took in all (1 without failover). */
  attempts: number;
  /** The model version that produced the final tokens (set by replicas; routers pass it on). */
  modelVersion?: string;
  /**
   * Text released only at the end and tied to no token: what a stop-sequence prefix held back
   * when an end-of-sequence token came. It travels in the end, not in a chunk, so that a stream
   * whose end is lost and resumed elsewhere cannot deliver it twice.
   */
  text?: string;
  /**
   * For an attempt that resumed from token ids: the text those tokens stand for (what the client
   * already holds), so a router without a tokenizer can capture the whole output. Omitted past
   * {@link RESUMED_TEXT_MAX_LENGTH}.
   */
  resumedText?: string;
  /** sha256 of the ONNX file that served the attempt (set by replicas; for capture). */
  modelSha256?: string;
}

/** Longest resumed text an end carries (a resume of 131,072 tokens could pass a NATS payload). */
export const RESUMED_TEXT_MAX_LENGTH = 262_144;

/** Asks the responder to stop work on a request (or on one attempt of it). */
export interface Cancel {
  requestId: string;
  /**
   * The router that owns the attempt (its `Sy-Origin`): a replica cancels only work of that
   * origin, so a slow router's cancel cannot cut another router's attempt of the same request.
   */
  origin?: string;
  /** Cancel only this attempt; absent cancels whichever attempt is running. */
  attempt?: number;
  /** For logs: why (client gone, failover, deadline). */
  reason?: string;
  /**
   * The reply subject (inbox) of the stream to cancel: proof that the cancel comes from the
   * requester, since only the requester and its responder know it. A router honours a client's
   * cancel only when it matches the request's reply subject.
   */
  reply?: string;
  /**
   * The requester gave up on this stream and sends the request again elsewhere: the stream's end
   * here is not the request's end (a router captures it as provisional, not final).
   */
  resending?: boolean;
}

/** The one decoder of acks. */
export function decodeAck(data: Uint8Array | string): Ack {
  const o = parseObject(data, 'ack');
  const ack: Ack = { by: readPattern('by', o.by, ID_PATTERN, '[A-Za-z0-9_-]{1,64}') };
  const seed = readOptional(o, 'seed', (f, v) => readInt(f, v, { min: 0, max: SEED_MAX }));
  const attempt = readOptional(o, 'attempt', (f, v) => readInt(f, v, ATTEMPT));
  if (seed !== undefined) ack.seed = seed;
  if (attempt !== undefined) ack.attempt = attempt;
  const maxTokens = readOptional(o, 'max_tokens', (f, v) => readInt(f, v, { min: 1, max: Infinity }));
  if (maxTokens !== undefined) ack.maxTokens = maxTokens;
  const { modelVersion } = optionalVersion(o);
  if (modelVersion !== undefined) ack.modelVersion = modelVersion;
  return ack;
}

/** Serialises an ack. */
export function encodeAck(ack: Ack): Uint8Array {
  return encodeObject({
    by: ack.by,
    seed: ack.seed,
    attempt: ack.attempt,
    max_tokens: ack.maxTokens,
    model_version: ack.modelVersion,
  });
}

/** The one decoder of chunks. */
export function decodeChunk(data: Uint8Array | string): Chunk {
  const o = parseObject(data, 'chunk');
  const chunk: Chunk = {
    seq: readInt('seq', o.seq, COUNT),
    attempt: readInt('attempt', o.attempt, ATTEMPT),
    tokenIds: readIntArray(
      'token_ids',
      o.token_ids,
      { min: 0, max: TOKEN_ID_MAX },
      { min: 0, max: CHUNK_MAX_TOKENS },
    ),
    text: readString('text', o.text, { maxLength: CHUNK_TEXT_MAX_LENGTH }),
  };
  const seed = readOptional(o, 'seed', (f, v) => readInt(f, v, { min: 0, max: SEED_MAX }));
  if (seed !== undefined) chunk.seed = seed;
  const maxTokens = readOptional(o, 'max_tokens', (f, v) => readInt(f, v, COUNT));
  if (maxTokens !== undefined) chunk.maxTokens = maxTokens;
  const { modelVersion } = optionalVersion(o);
  if (modelVersion !== undefined) chunk.modelVersion = modelVersion;
  return chunk;
}

/** Serialises a chunk. */
export function encodeChunk(chunk: Chunk): Uint8Array {
  return encodeObject({
    seq: chunk.seq,
    attempt: chunk.attempt,
    token_ids: chunk.tokenIds,
    text: chunk.text,
    seed: chunk.seed,
    max_tokens: chunk.maxTokens,
    model_version: chunk.modelVersion,
  });
}

/** The one decoder of end messages. */
export function decodeEnd(data: Uint8Array | string): End {
  const o = parseObject(data, 'end');
  const usage = readObject('usage', o.usage);
  return {
    seq: readInt('seq', o.seq, COUNT),
    attempt: readInt('attempt', o.attempt, ATTEMPT),
    finishReason: readEnum('finish_reason', o.finish_reason, FINISH_REASONS),
    usage: {
      promptTokens: readInt('usage.prompt_tokens', usage.prompt_tokens, COUNT),
      completionTokens: readInt('usage.completion_tokens', usage.completion_tokens, COUNT),
    },
    attempts: readInt('attempts', o.attempts, ATTEMPT),
    ...optionalVersion(o),
    ...optionalText(o),
    ...optionalCapture(o),
  };
}

function optionalCapture(o: WireObject): { resumedText?: string; modelSha256?: string } {
  const resumedText = readOptional(o, 'resumed_text', (f, v) =>
    readString(f, v, { maxLength: RESUMED_TEXT_MAX_LENGTH }),
  );
  const modelSha256 = readOptional(o, 'model_sha256', (f, v) =>
    readPattern(f, v, /^[0-9a-f]{64}$/, '64 hex digits'),
  );
  return {
    ...(resumedText !== undefined ? { resumedText } : {}),
    ...(modelSha256 !== undefined ? { modelSha256 } : {}),
  };
}

function optionalText(o: WireObject): { text?: string } {
  const text = readOptional(o, 'text', (f, v) => readString(f, v, { maxLength: CHUNK_TEXT_MAX_LENGTH }));
  return text === undefined || text === '' ? {} : { text };
}

function optionalVersion(o: WireObject): { modelVersion?: string } {
  const v = readOptional(o, 'model_version', (f, x) =>
    readPattern(f, x, MODEL_VERSION_PATTERN, '[A-Za-z0-9._-]{1,64}'),
  );
  return v === undefined ? {} : { modelVersion: v };
}

/** Serialises an end message. */
export function encodeEnd(end: End): Uint8Array {
  return encodeObject({
    seq: end.seq,
    attempt: end.attempt,
    finish_reason: end.finishReason,
    usage: { prompt_tokens: end.usage.promptTokens, completion_tokens: end.usage.completionTokens },
    attempts: end.attempts,
    model_version: end.modelVersion,
    text: end.text === '' ? undefined : end.text,
    resumed_text:
      end.resumedText !== undefined && end.resumedText.length <= RESUMED_TEXT_MAX_LENGTH
        ? end.resumedText
        : undefined,
    model_sha256: end.modelSha256,
  });
}

/** The one decoder of cancel messages. */
export function decodeCancel(data: Uint8Array | string): Cancel {
  const o = parseObject(data, 'cancel');
  const cancel: Cancel = {
    requestId: readPattern('request_id', o.request_id, REQUEST_ID_PATTERN, '[A-Za-z0-9._:-]{1,128}'),
  };
  const origin = readOptional(o, 'origin', (f, v) => readPattern(f, v, ID_PATTERN, '[A-Za-z0-9_-]{1,64}'));
  const attempt = readOptional(o, 'attempt', (f, v) => readInt(f, v, ATTEMPT));
  const reason = readOptional(o, 'reason', (f, v) =>
    readString(f, v, { maxLength: CANCEL_REASON_MAX_LENGTH }),
  );
  if (origin !== undefined) cancel.origin = origin;
  if (attempt !== undefined) cancel.attempt = attempt;
  if (reason !== undefined) cancel.reason = reason;
  const reply = readOptional(o, 'reply', (f, v) =>
    readPattern(f, v, REPLY_SUBJECT_PATTERN, 'a NATS subject of at most 256 characters'),
  );
  if (reply !== undefined) cancel.reply = reply;
  const resending = readOptional(o, 'resending', (f, v) => {
    if (typeof v !== 'boolean') invalidField(f, 'a boolean', v);
    return v;
  });
  if (resending !== undefined) cancel.resending = resending;
  return cancel;
}

/** Serialises a cancel message. */
export function encodeCancel(cancel: Cancel): Uint8Array {
  return encodeObject({
    request_id: cancel.requestId,
    origin: cancel.origin,
    attempt: cancel.attempt,
    reason: cancel.reason,
    reply: cancel.reply,
    resending: cancel.resending,
  });
}
