/**
 * The requester side of the streamed request/response that every hop uses (client → router,
 * router → replica). The requester registers a fresh reply subject, then publishes the request
 * with it as reply; the responder answers with one `ack`, `chunk`s with contiguous `seq`
 * (`keepalive`s in between while it has nothing to send), then exactly one `end` — or one
 * `error` at any point. The responder is in `stream-responder.ts`.
 *
 * nats.js v3 drops publishes made while disconnected, so a lost request shows up here as an ack
 * timeout and a lost chunk as a seq gap: both end the stream with a typed, retryable error
 * instead of silence, and the requester retries idempotently (same request id). Each failure
 * carries a {@link StreamFailure} so that callers decide on what happened, never on message text.
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
import { errorFromHeaders, getKind, readRequestMeta } from './headers.ts';
import { decodeAck, decodeChunk, decodeEnd, type Ack, type Chunk, type End } from './messages/stream.ts';
import { replyMux } from './reply-mux.ts';
import { timerDelay } from './timers.ts';

/** How long a requester waits for the ack: a live responder acks (or refuses) at once. */
export const DEFAULT_ACK_TIMEOUT_MS = 5_000;

/**
 * What ended a stream without an `end`:
 * - `remote`: the responder (or the NATS server: no responders) sent an error;
 * - `no_ack`: nothing acked within the ack timeout (the request or the responder was lost);
 * - `stalled`: the acked stream was silent past the idle timeout (no chunk, no keepalive);
 * - `lost_messages`: a seq gap (a chunk was dropped on the way);
 * - `protocol`: the responder broke the protocol or sent a body that does not decode;
 * - `deadline`: the request's deadline passed;
 * - `cancelled`: the requester's abort signal fired;
 * - `closed`: the requester closed the stream itself ({@link StreamHandle.close});
 * - `send_failed`: the request could not be sent, or the reply subscription was refused.
 */
export type StreamFailure =
  | 'remote'
  | 'no_ack'
  | 'stalled'
  | 'lost_messages'
  | 'protocol'
  | 'deadline'
  | 'cancelled'
  | 'closed'
  | 'send_failed';

/** One message of a stream as the requester sees it; exactly one `end` or `error` comes last. */
export type StreamEvent =
  | { kind: 'ack'; ack: Ack; msg: Msg }
  | { kind: 'chunk'; chunk: Chunk; msg: Msg }
  | { kind: 'end'; end: End; msg: Msg }
  | { kind: 'error'; error: SwitchyardError; failure: StreamFailure; msg?: Msg };

/** How a stream finished. Never rejects, so an unobserved failure cannot crash the process. */
export type StreamOutcome =
  { ok: true; end: End } | { ok: false; error: SwitchyardError; failure: StreamFailure };

/** Requester-side options of {@link openStream}. */
export interface OpenStreamOptions {
  /** Receives every event in order, ending with exactly one `end` or `error`. Must not throw. */
  onMessage(event: StreamEvent): void;
  /** Fail with `unavailable` (`no_ack`) when no ack comes within this. @default DEFAULT_ACK_TIMEOUT_MS */
  ackTimeoutMs?: number;
  /**
   * Fail with `unavailable` (`stalled`) when the acked stream is silent this long: no chunk and
   * no keepalive. Counted from the ack, so a responder that acked and then went away is noticed.
   * @default no limit
   */
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
  /**
   * Ends the stream locally (default reason: `cancelled`); `onMessage` gets it as the terminal
   * error, with failure `closed`.
   */
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
  return new StreamRequester(subject, opts).send(nc, body, headers);
}

/** Where a requester is: waiting for the ack, receiving chunks, or over (one terminal event sent). */
type RequesterState = 'awaiting_ack' | 'streaming' | 'done';

class StreamRequester implements StreamHandle {
  readonly done: Promise<StreamOutcome>;
  private state: RequesterState = 'awaiting_ack';
  private nextSeq = 0;
  private silenceTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private release: (() => void) | undefined;
  private replySubject = '';
  private resolveDone!: (outcome: StreamOutcome) => void;
  private readonly onAbort = (): void =>
    this.fail(new CancelledError('request cancelled by the requester'), 'cancelled');

  constructor(
    private readonly subject: string,
    private readonly opts: OpenStreamOptions,
  ) {
    this.done = new Promise<StreamOutcome>((resolve) => (this.resolveDone = resolve));
  }

  get inbox(): string {
    return this.replySubject;
  }

  close(reason?: SwitchyardError): void {
    this.fail(reason ?? new CancelledError('stream closed'), 'closed');
  }

  /** Subscribes, publishes and arms the timers; early failures are reported asynchronously. */
  send(nc: NatsConnection, body: Uint8Array, headers: MsgHdrs): this {
    const { opts } = this;
    let deadline = opts.deadline;
    try {
      deadline ??= readRequestMeta(headers).deadline;
    } catch (err) {
      const error = err instanceof SwitchyardError ? err : new InternalError(String(err));
      return this.failSoon(error, 'send_failed');
    }
    if (opts.signal?.aborted) {
      queueMicrotask(this.onAbort);
      return this;
    }
    if (deadline !== undefined && deadline <= Date.now()) {
      return this.failSoon(
        new DeadlineExceededError('deadline passed before the request was sent'),
        'deadline',
      );
    }
    try {
      const reply = replyMux(nc, opts.inboxPrefix).register((err, msg) => {
        // An error here is the server refusing the inbox subscription (permissions): nothing will arrive.
        if (err || !msg) this.fail(inboxError(err ?? new Error('reply subscription closed')), 'send_failed');
        else this.onMsg(msg);
      });
      this.release = reply.release;
      this.replySubject = reply.subject;
      nc.publish(this.subject, body, { reply: reply.subject, headers });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      return this.failSoon(
        new UnavailableError(`cannot send to ${this.subject}: ${reason}`, { cause: err }),
        'send_failed',
      );
    }
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    const ackTimeoutMs = opts.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
    this.armSilence(
      ackTimeoutMs,
      'no_ack',
      () => new UnavailableError(`no ack from ${this.subject} within ${ackTimeoutMs} ms`),
    );
    if (deadline !== undefined) {
      const ms = deadline - Date.now();
      this.deadlineTimer = setTimeout(
        () => this.fail(new DeadlineExceededError(`deadline passed after ${ms} ms`), 'deadline'),
        timerDelay(ms),
      ).unref();
    }
    return this;
  }

  private onMsg(msg: Msg): void {
    if (this.state === 'done') return;
    const remoteError = errorFromHeaders(msg.headers);
    if (remoteError !== undefined) return this.fail(remoteError, 'remote', msg);
    const kind = getKind(msg.headers);
    try {
      switch (kind) {
        case 'ack':
          if (this.state !== 'awaiting_ack')
            return this.fail(this.protocolError('second ack'), 'protocol', msg);
          return this.onAck(decodeAck(msg.data), msg);
        case 'chunk':
          if (this.state !== 'streaming')
            return this.fail(this.protocolError('chunk before ack'), 'protocol', msg);
          return this.onChunk(decodeChunk(msg.data), msg);
        case 'end':
          if (this.state !== 'streaming')
            return this.fail(this.protocolError('end before ack'), 'protocol', msg);
          return this.onEnd(decodeEnd(msg.data), msg);
        case 'keepalive':
          if (this.state === 'streaming') this.armIdle();
          return;
        default:
          // Unknown or missing kinds are ignored: a later minor revision may add informational kinds.
          return;
      }
    } catch (err) {
      // A body that does not decode is the responder's fault, not the requester's: internal.
      const detail = err instanceof Error ? err.message : String(err);
      this.fail(
        new InternalError(`malformed ${kind ?? 'message'} from ${this.subject}: ${detail}`, { cause: err }),
        'protocol',
        msg,
      );
    }
  }

  private onAck(ack: Ack, msg: Msg): void {
    this.state = 'streaming';
    this.armIdle();
    this.deliver({ kind: 'ack', ack, msg });
  }

  private onChunk(chunk: Chunk, msg: Msg): void {
    if (chunk.seq !== this.nextSeq) return this.fail(this.lostMessages(chunk.seq), 'lost_messages', msg);
    this.nextSeq += 1;
    this.armIdle();
    this.deliver({ kind: 'chunk', chunk, msg });
  }

  private onEnd(end: End, msg: Msg): void {
    if (end.seq !== this.nextSeq) return this.fail(this.lostMessages(end.seq), 'lost_messages', msg);
    this.finish({ ok: true, end }, { kind: 'end', end, msg });
  }

  private armSilence(ms: number | undefined, failure: StreamFailure, error: () => SwitchyardError): void {
    clearTimeout(this.silenceTimer);
    if (ms !== undefined)
      this.silenceTimer = setTimeout(() => this.fail(error(), failure), timerDelay(ms)).unref();
  }

  private armIdle(): void {
    const ms = this.opts.idleTimeoutMs;
    this.armSilence(
      ms,
      'stalled',
      () => new UnavailableError(`stream from ${this.subject} stalled: nothing for ${ms} ms`),
    );
  }

  private deliver(event: StreamEvent): void {
    try {
      this.opts.onMessage(event);
    } catch (err) {
      // A throwing handler must not leave the stream open forever; done reports it.
      this.cleanup();
      this.resolveDone({
        ok: false,
        error: new InternalError(`stream handler threw on ${event.kind}`, { cause: err }),
        failure: 'protocol',
      });
    }
  }

  private fail(error: SwitchyardError, failure: StreamFailure, msg?: Msg): void {
    this.finish(
      { ok: false, error, failure },
      msg === undefined ? { kind: 'error', error, failure } : { kind: 'error', error, failure, msg },
    );
  }

  private failSoon(error: SwitchyardError, failure: StreamFailure): this {
    queueMicrotask(() => this.fail(error, failure));
    return this;
  }

  private finish(outcome: StreamOutcome, event: StreamEvent): void {
    if (this.state === 'done') return;
    this.cleanup();
    try {
      this.opts.onMessage(event);
    } catch (err) {
      // The outcome stands; a throwing handler is a bug to see, not a reason to crash the actor.
      process.emitWarning(`stream handler threw on ${event.kind}: ${String(err)}`);
    }
    this.resolveDone(outcome);
  }

  private cleanup(): void {
    this.state = 'done';
    clearTimeout(this.silenceTimer);
    clearTimeout(this.deadlineTimer);
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.release?.();
  }

  private protocolError(what: string): SwitchyardError {
    return new InternalError(`protocol error from ${this.subject}: ${what}`);
  }

  private lostMessages(got: number): SwitchyardError {
    return new InternalError(
      `stream from ${this.subject} lost messages: expected seq ${this.nextSeq}, got ${got}`,
    );
  }
}

function inboxError(err: Error): SwitchyardError {
  if (err instanceof PermissionViolationError) {
    return new ForbiddenError(`not permitted to subscribe to reply inbox ${err.subject}: set inboxPrefix`, {
      cause: err,
    });
  }
  return new InternalError(`reply inbox subscription failed: ${err.message}`, { cause: err });
}
