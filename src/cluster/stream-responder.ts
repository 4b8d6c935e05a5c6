/**
 * The responder side of the stream protocol (see `stream-requester.ts`): publishes one stream's
 * replies in protocol order, numbers the chunks, and sends a keepalive when asked to while it
 * has nothing else to say.
 */
import type { MsgHdrs, NatsConnection } from '@nats-io/nats-core';
import type { SwitchyardError } from '../errors/errors.ts';
import { HEADERS, errorToHeaders, newHeaders, setKind } from './headers.ts';
import {
  encodeAck,
  encodeChunk,
  encodeEnd,
  type Ack,
  type Chunk,
  type End,
  type StreamKind,
} from './messages/stream.ts';

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
  /** When the last message of this stream was handed to NATS (performance.now()). */
  private lastSentAt = performance.now();

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

  /**
   * Tells the requester the stream is still owned, when nothing was sent for `quietMs`. Returns
   * whether a keepalive went out. A no-op before the ack and after the end.
   */
  keepalive(quietMs: number): boolean {
    if (!this.acked || this.finishedFlag || performance.now() - this.lastSentAt < quietMs) return false;
    return this.send('keepalive', new Uint8Array(0));
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
      this.lastSentAt = performance.now();
      return true;
    } catch {
      // Closed or draining connection: the requester will see a timeout or gap and retry.
      return false;
    }
  }
}
