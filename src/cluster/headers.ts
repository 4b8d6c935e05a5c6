/**
 * NATS header names and the helpers that read and write them. Errors cross NATS as headers
 * (code + message, like nats.js services' `Nats-Service-Error-Code`) and are rebuilt by exactly
 * one function, {@link errorFromHeaders}, so every actor sees the same taxonomy.
 *
 * nats.js matches header names exactly (case-sensitive) by default: always use these constants.
 */
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import {
  InternalError,
  InvalidRequestError,
  RateLimitedError,
  UnavailableError,
  errorFromCode,
  isErrorCode,
  type SwitchyardError,
} from '../errors/errors.ts';
import { ATTEMPT_MAX, REQUEST_ID_PATTERN, STREAM_KINDS, type StreamKind } from './messages/stream.ts';
import { ID_PATTERN } from './subjects.ts';

/** The header names of the protocol. */
export const HEADERS = {
  /** Idempotency key of the request, chosen by the client; kept across retries and failover. */
  requestId: 'Sy-Request-Id',
  /**
   * Id of the actor that owns this hop's request (the router that forwarded it): a replica
   * cancels the work of an owner whose heartbeats stop, so orphans do not hold batch slots.
   */
  origin: 'Sy-Origin',
  /** 1-based attempt number of this hop's request. */
  attempt: 'Sy-Attempt',
  /** Absolute deadline, epoch milliseconds: absolute so it survives hops without re-computation. */
  deadline: 'Sy-Deadline',
  /** Kind of a reply-stream message: `ack`, `chunk`, `end` or `error`. */
  kind: 'Sy-Kind',
  /** Error code (one of ERROR_CODES) of an `error` message. */
  errorCode: 'Sy-Error-Code',
  /** Human-readable error message, safe to show to the client. */
  errorMessage: 'Sy-Error-Message',
  /** For `rate_limited`: when to retry, in milliseconds. */
  retryAfterMs: 'Sy-Retry-After-Ms',
  /** W3C trace context. */
  traceparent: 'traceparent',
  /** W3C trace context vendor state. */
  tracestate: 'tracestate',
  /** API key id of a request that came through a bridge with keys (for capture). */
  keyId: 'Sy-Key-Id',
} as const;

/** Longest error message carried in a header; operator detail belongs in logs, not on the wire. */
export const ERROR_MESSAGE_MAX_LENGTH = 1_024;
/** Longest trace-context header value accepted (W3C allows 512 list members of tracestate; we cap it). */
export const TRACE_HEADER_MAX_LENGTH = 1_024;
/** NATS status code the server sends to a reply subject when no one subscribes to the request subject. */
const NATS_NO_RESPONDERS = 503;

/** Header values may not contain line breaks (they would end the header block): fold them to spaces. */
function headerSafe(value: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const folded = value.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return folded.length > max ? `${folded.slice(0, max - 1)}…` : folded;
}

/** Fresh, empty headers (re-exported so actors need not import nats-core for this). */
export function newHeaders(): MsgHdrs {
  return natsHeaders();
}

/**
 * Writes an error as headers: code, message, and Retry-After for `rate_limited`. The message is
 * what the client will read; never put operator-only detail (paths, stacks) into it.
 */
export function errorToHeaders(err: SwitchyardError, h: MsgHdrs = natsHeaders()): MsgHdrs {
  h.set(HEADERS.errorCode, err.code);
  h.set(HEADERS.errorMessage, headerSafe(err.message, ERROR_MESSAGE_MAX_LENGTH));
  if (err instanceof RateLimitedError) {
    h.set(HEADERS.retryAfterMs, String(Math.max(0, Math.ceil(err.retryAfterMs))));
  }
  return h;
}

/**
 * THE one function that rebuilds an error from the wire: our error headers, or the NATS
 * server's own no-responders status (nothing subscribes: `unavailable`). Returns undefined when
 * the headers carry no error. An unknown code (a newer peer) becomes `internal` naming the code.
 */
export function errorFromHeaders(h: MsgHdrs | undefined): SwitchyardError | undefined {
  if (h === undefined) return undefined;
  const code = h.get(HEADERS.errorCode);
  if (code !== '') {
    const message = h.get(HEADERS.errorMessage) || `remote error ${code}`;
    if (!isErrorCode(code)) {
      return new InternalError(`unknown error code '${headerSafe(code, 64)}' from peer: ${message}`);
    }
    const retryAfter = Number(h.get(HEADERS.retryAfterMs));
    return errorFromCode(code, message, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 0);
  }
  if (h.hasError) {
    if (h.code === NATS_NO_RESPONDERS) {
      return new UnavailableError('no responders: nothing is subscribed to serve this request');
    }
    return new InternalError(`NATS status ${h.code}${h.description ? ` ${h.description}` : ''}`);
  }
  return undefined;
}

/** Sets the kind of a reply-stream message. */
export function setKind(h: MsgHdrs, kind: StreamKind): MsgHdrs {
  h.set(HEADERS.kind, kind);
  return h;
}

/** The kind of a reply-stream message, or undefined when absent or unknown (receivers ignore those). */
export function getKind(h: MsgHdrs | undefined): StreamKind | undefined {
  const kind = h?.get(HEADERS.kind);
  return (STREAM_KINDS as readonly string[]).includes(kind ?? '') ? (kind as StreamKind) : undefined;
}

/** The per-request metadata every hop carries in headers (DESIGN.md "Request path"). */
export interface RequestMeta {
  requestId?: string;
  /** Id of the router that owns the request on this hop. */
  origin?: string;
  /** 1-based. */
  attempt?: number;
  /** Epoch milliseconds. */
  deadline?: number;
  traceparent?: string;
  tracestate?: string;
  /**
   * The API key id a bridge authenticated the request with (never the key). Routers record it
   * for capture only from a bridge's inbox (permissions keep clients off those), so no client can
   * claim another key's id.
   */
  keyId?: string;
}

/** Writes request metadata; absent fields leave existing headers alone. */
export function writeRequestMeta(meta: RequestMeta, h: MsgHdrs = natsHeaders()): MsgHdrs {
  if (meta.requestId !== undefined) h.set(HEADERS.requestId, meta.requestId);
  if (meta.origin !== undefined) h.set(HEADERS.origin, meta.origin);
  if (meta.attempt !== undefined) h.set(HEADERS.attempt, String(meta.attempt));
  if (meta.deadline !== undefined) h.set(HEADERS.deadline, String(Math.floor(meta.deadline)));
  if (meta.traceparent !== undefined) {
    h.set(HEADERS.traceparent, headerSafe(meta.traceparent, TRACE_HEADER_MAX_LENGTH));
  }
  if (meta.tracestate !== undefined) {
    h.set(HEADERS.tracestate, headerSafe(meta.tracestate, TRACE_HEADER_MAX_LENGTH));
  }
  if (meta.keyId !== undefined) h.set(HEADERS.keyId, meta.keyId);
  return h;
}

function readHeaderInt(h: MsgHdrs, name: string, min: number, max: number): number | undefined {
  const raw = h.get(name);
  if (raw === '') return undefined;
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidRequestError(
      `header ${name} must be an integer between ${min} and ${max}, got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  }
  return value;
}

/**
 * Reads and checks request metadata. Throws {@link InvalidRequestError} naming the header when
 * one is malformed: a garbled deadline must not turn into "no deadline".
 */
export function readRequestMeta(h: MsgHdrs | undefined): RequestMeta {
  const meta: RequestMeta = {};
  if (h === undefined) return meta;
  const requestId = h.get(HEADERS.requestId);
  if (requestId !== '') {
    if (!REQUEST_ID_PATTERN.test(requestId)) {
      throw new InvalidRequestError(
        `header ${HEADERS.requestId} must match [A-Za-z0-9._:-]{1,128}, got ${JSON.stringify(requestId.slice(0, 40))}`,
      );
    }
    meta.requestId = requestId;
  }
  const origin = h.get(HEADERS.origin);
  if (origin !== '') {
    if (!ID_PATTERN.test(origin)) {
      throw new InvalidRequestError(
        `header ${HEADERS.origin} must match [A-Za-z0-9_-]{1,64}, got ${JSON.stringify(origin.slice(0, 40))}`,
      );
    }
    meta.origin = origin;
  }
  const attempt = readHeaderInt(h, HEADERS.attempt, 1, ATTEMPT_MAX);
  if (attempt !== undefined) meta.attempt = attempt;
  const deadline = readHeaderInt(h, HEADERS.deadline, 0, Number.MAX_SAFE_INTEGER);
  if (deadline !== undefined) meta.deadline = deadline;
  const traceparent = h.get(HEADERS.traceparent);
  if (traceparent !== '') meta.traceparent = traceparent;
  const tracestate = h.get(HEADERS.tracestate);
  if (tracestate !== '') meta.tracestate = tracestate;
  const keyId = h.get(HEADERS.keyId);
  if (keyId !== '') {
    if (!ID_PATTERN.test(keyId)) {
      throw new InvalidRequestError(
        `header ${HEADERS.keyId} must match [A-Za-z0-9_-]{1,64}, got ${JSON.stringify(keyId.slice(0, 40))}`,
      );
    }
    meta.keyId = keyId;
  }
  return meta;
}
