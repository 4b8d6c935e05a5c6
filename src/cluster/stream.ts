/**
 * Streamed request/response over a private inbox, the one pattern every hop uses (client →
 * router, router → replica). The requester subscribes to a fresh inbox, then publishes the
 * request with that inbox as reply subject; the responder answers with one `ack`, `chunk`s with
 * contiguous `seq`, then exactly one `end` — or one `error` at any point.
 *
 * nats.js v3 drops publishes made while disconnected, so a lost request shows up here as an ack
 * timeout and a lost chunk as a seq gap: both end the stream with a typed, retryable error
 * instead of silence, and the requester retries idempotently (same request id).
 */
import { PermissionViolationError, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/nats-core';
import {
  CancelledError,
  DeadlineExceededError,
  ForbiddenError,
  InternalError,
  SwitchyardError,
  UnavailableError,
} from '../errors/errors.ts';
import {
  HEADERS,
  errorFromHeaders,
  errorToHeaders,
  getKind,
  newHeaders,
  readRequestMeta,
  setKind,
} from './headers.ts';
import {
  decodeAck,
  decodeChunk,
  decodeEnd,
  encodeAck,
  encodeChunk,
  encodeEnd,
  type Ack,
  type Chunk,
  type End,
  type StreamKind,
} from './messages/stream.ts';
import { replyMux } from './reply-mux.ts';

/** How long a requester waits for the ack: a live responder acks (or refuses) at once. */
export const DEFAULT_ACK_TIMEOUT_MS = 5_000;

/** One message of a stream as the requester sees it; exactly one `end` or `error` comes last. */
export type StreamEvent =
  | { kind: 'ack'; ack: Ack; msg: Msg }
  | { kind: 'chunk'; chunk: Chunk; msg: Msg }
  | { kind: 'end'; end: End; msg: Msg }
  | { kind: 'error'; error: SwitchyardError; msg?: Msg };

/** How a stream finished. Never rejects, so an unobserved failure cannot crash the process. */
export type StreamOutcome = { ok: true; end: End } | { ok: false; error: SwitchyardError };

/** Requester-side options of {@link openStream}. */
export interface OpenStreamOptions {
  /** Receives every event in order, ending with exactly one `end` or `error`. Must not throw. */
  onMessage(event: StreamEvent): void;
  /** Fail with `unavailable` when no ack comes within this. @default DEFAULT_ACK_TIMEOUT_MS */
  ackTimeoutMs?: number;
  /** Fail with `unavailable` when the acked stream is silent this long. @default no limit */
  idleTimeoutMs?: number;
  /** Epoch ms after which the stream fails with `deadline_exceeded`. @default the Sy-Deadline header */
  deadline?: number;
  /** Aborting ends the stream with `cancelled` (tell the responder yourself: see docs/protocol.md). */
  signal?: AbortSignal;
  /** Must match the connection's inboxPrefix where permissions restrict inboxes. @default '_INBOX' */
  inboxPrefix?: string;
}

/** A stream in progress, as returned by {@link openStream}. */
export interface StreamHandle {
  /** The reply subject of this stream ('' until the request is sent). */
  readonly inbox: string;
  /** Resolves once, when the terminal event has been delivered. */
  readonly done: Promise<StreamOutcome>;
  /** Ends the stream locally (default reason: `cancelled`); `onMessage` gets it as the terminal error. */
  close(reason?: SwitchyardError): void;
}

/**
 * Sends `body` to `subject` and streams the reply to `opts.onMessage`, checking the protocol:
 * ack first, contiguous seq, end.seq equal to the number of chunks. A violation, a malformed
 * body, a timeout, the deadline or an abort ends the stream with a typed error.
 */
export function openStream(
  nc: NatsConnection,
  subject: string,
  body: Uint8Array,
  headers: MsgHdrs,
  opts: OpenStreamOptions,
): StreamHandle {
  const ackTimeoutMs = opts.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
  let resolveDone!: (outcome: StreamOutcome) => void;
  const done = new Promise<StreamOutcome>((resolve) => (resolveDone = resolve));
  let finished = false;
  let acked = false;
  let nextSeq = 0;
  let silenceTimer: NodeJS.Timeout | undefined;
  let deadlineTimer: NodeJS.Timeout | undefined;
  let release: (() => void) | undefined;
  let inbox = '';

  const cleanup = (): void => {
    finished = true;
    clearTimeout(silenceTimer);
    clearTimeout(deadlineTimer);
    opts.signal?.removeEventListener('abort', onAbort);
    release?.();
  };
  const finish = (outcome: StreamOutcome, event: StreamEvent): void => {
    if (finished) return;
    cleanup();
    try {
      opts.onMessage(event);
    } catch (err) {
      // The outcome stands; a throwing handler is a bug to see, not a reason to crash the actor.
      process.emitWarning(`stream handler threw on ${event.kind}: ${String(err)}`);
    }
    resolveDone(outcome);
  };
  const fail = (error: SwitchyardError, msg?: Msg): void =>
    finish({ ok: false, error }, { kind: 'error', error, msg });
  const armSilence = (ms: number | undefined, error: () => SwitchyardError): void => {
    clearTimeout(silenceTimer);
    if (ms !== undefined) silenceTimer = setTimeout(() => fail(error()), ms).unref();
  };
  const armIdle = (): void => armSilence(opts.idleTimeoutMs, () => stalled(subject, opts.idleTimeoutMs ?? 0));
  const onAbort = (): void => fail(new CancelledError('request cancelled by the requester'));
  const deliver = (event: StreamEvent): void => {
    try {
      opts.onMessage(event);
    } catch (err) {
      // A throwing handler must not leave the stream open forever; done reports it.
      cleanup();
      resolveDone({
        ok: false,
        error: new InternalError(`stream handler threw on ${event.kind}`, { cause: err }),
      });
    }
  };

  const onMsg = (msg: Msg): void => {
    if (finished) return;
    const remoteError = errorFromHeaders(msg.headers);
    if (remoteError !== undefined) return fail(remoteError, msg);
    const kind: StreamKind | undefined = getKind(msg.headers);
    try {
      if (kind === 'ack') {
        if (acked) return fail(protocolError(subject, 'second ack'), msg);
        const ack = decodeAck(msg.data);
        acked = true;
        armIdle();
        return deliver({ kind: 'ack', ack, msg });
      }
      if (kind === 'chunk') {
        if (!acked) return fail(protocolError(subject, 'chunk before ack'), msg);
        const chunk = decodeChunk(msg.data);
        if (chunk.seq !== nextSeq) return fail(lostMessages(subject, nextSeq, chunk.seq), msg);
        nextSeq += 1;
        armIdle();
        return deliver({ kind: 'chunk', chunk, msg });
      }
      if (kind === 'end') {
        if (!acked) return fail(protocolError(subject, 'end before ack'), msg);
        const end = decodeEnd(msg.data);
        if (end.seq !== nextSeq) return fail(lostMessages(subject, nextSeq, end.seq), msg);
        return finish({ ok: true, end }, { kind: 'end', end, msg });
      }
      // Unknown or missing kinds are ignored: a later minor revision may add informational kinds.
    } catch (err) {
      // A body that does not decode is the responder's fault, not the requester's: internal.
      const detail = err instanceof Error ? err.message : String(err);
      fail(
        new InternalError(`malformed ${kind ?? 'message'} from ${subject}: ${detail}`, { cause: err }),
        msg,
      );
    }
  };

  const handle: StreamHandle = {
    get inbox() {
      return inbox;
    },
    done,
    close: (reason) => fail(reason ?? new CancelledError('stream closed')),
  };
  let deadline = opts.deadline;
  try {
    deadline ??= readRequestMeta(headers).deadline;
  } catch (err) {
    queueMicrotask(() => fail(err instanceof SwitchyardError ? err : new InternalError(String(err))));
    return handle;
  }
  if (opts.signal?.aborted) {
    queueMicrotask(onAbort);
    return handle;
  }
  if (deadline !== undefined && deadline <= Date.now()) {
    queueMicrotask(() => fail(new DeadlineExceededError('deadline passed before the request was sent')));
    return handle;
  }
  try {
    const reply = replyMux(nc, opts.inboxPrefix).register((err, msg) => {
      // An error here is the server refusing the inbox subscription (permissions): nothing will arrive.
      if (err || !msg) fail(inboxError(err ?? new Error('reply subscription closed')));
      else onMsg(msg);
    });
    release = reply.release;
    inbox = reply.subject;
    nc.publish(subject, body, { reply: inbox, headers });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    queueMicrotask(() => fail(new UnavailableError(`cannot send to ${subject}: ${reason}`, { cause: err })));
    return handle;
  }
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  armSilence(ackTimeoutMs, () => new UnavailableError(`no ack from ${subject} within ${ackTimeoutMs} ms`));
  if (deadline !== undefined) {
    const ms = deadline - Date.now();
    deadlineTimer = setTimeout(
      () => fail(new DeadlineExceededError(`deadline passed after ${ms} ms`)),
      ms,
    ).unref();
  }
  return handle;
}

function inboxError(err: Error): SwitchyardError {
  if (err instanceof PermissionViolationError) {
    return new ForbiddenError(`not permitted to subscribe to reply inbox ${err.subject}: set inboxPrefix`, {
      cause: err,
    });
  }
  return new InternalError(`reply inbox subscription failed: ${err.message}`, { cause: err });
}

function protocolError(subject: string, what: string): SwitchyardError {
  return new InternalError(`protocol error from ${subject}: ${what}`);
}

function lostMessages(subject: string, expected: number, got: number): SwitchyardError {
  return new InternalError(`stream from ${subject} lost messages: expected seq ${expected}, got ${got}`);
}

function stalled(subject: string, ms: number): SwitchyardError {
  return new UnavailableError(`stream from ${subject} stalled: nothing for ${ms} ms`);
}

/** Responder-side identity of one stream. */
export interface StreamResponderOptions {
  /** Echoed in every reply's Sy-Request-Id header, for correlation in logs and traces. */
  requestId?: string;
  /** The attempt this responder serves (1-based), written into chunks and the end. @default 1 */
  attempt?: number;
}

/**
 * Publishes one stream's replies in protocol order and numbers the chunks. After `end` or
 * `error` every call is a no-op that returns false, so a cancel racing a finish cannot produce
 * a second terminal message. Methods return whether the message was handed to NATS.
 */
export class StreamResponder {
  private readonly nc: NatsConnection;
  private readonly reply: string;
  private readonly requestId: string | undefined;
  /** The attempt this responder serves. */
  readonly attempt: number;
  private acked = false;
  private finishedFlag = false;
  private seq = 0;

  constructor(nc: NatsConnection, reply: string, opts: StreamResponderOptions = {}) {
    this.nc = nc;
    this.reply = reply;
    this.requestId = opts.requestId;
    this.attempt = opts.attempt ?? 1;
  }

  /** True once `end` or `error` was sent: the stream is over. */
  get finished(): boolean {
    return this.finishedFlag;
  }

  /** Number of chunks sent so far (the seq of the next chunk). */
  get sentChunks(): number {
    return this.seq;
  }

  /** Accepts the request; must come first and only once. */
  ack(ack: Ack): boolean {
    if (this.finishedFlag) return false;
    if (this.acked) throw new Error('StreamResponder: ack sent twice');
    this.acked = true;
    return this.send('ack', encodeAck({ ...ack, attempt: ack.attempt ?? this.attempt }));
  }

  /**
   * Sends the next tokens; seq is filled in, and attempt unless given (a router forwarding a
   * resumed attempt's tokens passes that attempt's number).
   */
  chunk(chunk: Omit<Chunk, 'seq' | 'attempt'> & { attempt?: number }): boolean {
    if (this.finishedFlag) return false;
    if (!this.acked) throw new Error('StreamResponder: chunk before ack');
    const sent = this.send('chunk', encodeChunk({ attempt: this.attempt, ...chunk, seq: this.seq }));
    this.seq += 1;
    return sent;
  }

  /** Ends the stream successfully; `attempt` and `attempts` default to this responder's attempt. */
  end(end: Omit<End, 'seq' | 'attempt' | 'attempts'> & { attempt?: number; attempts?: number }): boolean {
    if (this.finishedFlag) return false;
    if (!this.acked) throw new Error('StreamResponder: end before ack');
    this.finishedFlag = true;
    return this.send(
      'end',
      encodeEnd({
        ...end,
        attempts: end.attempts ?? this.attempt,
        seq: this.seq,
        attempt: end.attempt ?? this.attempt,
      }),
    );
  }

  /** Ends the stream with an error; allowed before the ack (to refuse at once, e.g. `busy`). */
  error(err: SwitchyardError): boolean {
    if (this.finishedFlag) return false;
    this.finishedFlag = true;
    return this.send('error', new Uint8Array(0), errorToHeaders(err));
  }

  private send(kind: StreamKind, body: Uint8Array, h: MsgHdrs = newHeaders()): boolean {
    setKind(h, kind);
    if (this.requestId !== undefined) h.set(HEADERS.requestId, this.requestId);
    try {
      this.nc.publish(this.reply, body, { headers: h });
      return true;
    } catch {
      // Closed or draining connection: the requester will see a timeout or gap and retry.
      return false;
    }
  }
}
