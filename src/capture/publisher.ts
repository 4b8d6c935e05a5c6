/**
 * The capture publisher: a bounded buffer of completion events between a router and JetStream.
 * Serving never waits on it: `offer()` only queues (the event is prepared and encoded later, off
 * the request's path), and an event leaves the buffer only once JetStream acknowledged it, since
 * nats.js drops core publishes made while disconnected. When JetStream is slow or gone the
 * buffer fills and the oldest waiting events are dropped and counted
 * (`switchyard_capture_dropped_total{reason}`); a router killed outright loses what it held,
 * which no counter can see (README, "Capture: what exactly once means").
 *
 * Publishing carries a message id (`Nats-Msg-Id`, see completionMsgId), so a retry after a lost
 * ack is stored once. Failures back off (JetStream restarting, the stream not created yet) and
 * retry the same events, oldest first.
 */
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/nats-core';
import type { Context } from '@opentelemetry/api';
import { injectTrace } from '../telemetry/propagation.ts';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Counter, Gauge, type Registry } from 'prom-client';
import { completionMsgId, encodeCaptureRecord, type CompletionEvent } from '../cluster/messages/capture.ts';
import { completionSubject } from '../cluster/subjects.ts';
import type { Logger } from '../telemetry/logger.ts';
import { DEFAULT_CAPTURE_MAX_IN_FLIGHT, type CompiledCaptureOptions } from './options.ts';

/** First pause after a failed publish; doubles up to {@link MAX_RETRY_DELAY_MS}. */
export const FIRST_RETRY_DELAY_MS = 100;
/** Longest pause between publish retries while JetStream is unavailable. */
export const MAX_RETRY_DELAY_MS = 5_000;
/** Room kept under the server's max_payload for headers. */
const HEADER_ROOM_BYTES = 1_024;

/** Why an event was dropped (the `reason` label). */
export type DropReason = 'buffer_full' | 'too_large' | 'shutdown';

interface Entry {
  event: CompletionEvent;
  /** Encoded once, on first send. */
  data?: Uint8Array;
  /** Bytes counted against the buffer (an estimate until encoded). */
  bytes: number;
  /** The request's trace context, so the collector's work joins the request's trace. */
  headers?: MsgHdrs;
}

/** The capture metrics of one actor. */
export class CaptureMetrics {
  readonly published: Counter<'outcome'>;
  readonly dropped: Counter<'reason'>;
  readonly buffered: Gauge;
  readonly failures: Counter;

  constructor(registry: Registry, buffered: () => number) {
    this.published = new Counter({
      name: 'switchyard_capture_events_total',
      help: 'Completion events JetStream acknowledged (outcome: stored, or duplicate of one stored before).',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.dropped = new Counter({
      name: 'switchyard_capture_dropped_total',
      help: 'Completion events dropped before JetStream stored them, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.failures = new Counter({
      name: 'switchyard_capture_publish_failures_total',
      help: 'Publish attempts that failed (the event stays buffered and is retried).',
      registers: [registry],
    });
    this.buffered = new Gauge({
      name: 'switchyard_capture_buffered_events',
      help: 'Completion events waiting for a JetStream ack.',
      registers: [registry],
      collect() {
        this.set(buffered());
      },
    });
    for (const outcome of ['stored', 'duplicate']) this.published.inc({ outcome }, 0);
    for (const reason of ['buffer_full', 'too_large', 'shutdown'] satisfies DropReason[]) {
      this.dropped.inc({ reason }, 0);
    }
  }
}

/** Options of a publisher beyond the router's capture settings. */
export interface CapturePublisherDeps {
  nc: NatsConnection;
  options: CompiledCaptureOptions;
  metrics: CaptureMetrics;
  log: Logger;
  /** Applied to each event before it is encoded (redaction). */
  prepare?: (event: CompletionEvent) => CompletionEvent;
  /** @default DEFAULT_CAPTURE_MAX_IN_FLIGHT */
  maxInFlight?: number;
}

/** Rough size of an event before it is encoded: its text fields dominate. */
function estimateBytes(event: CompletionEvent): number {
  let chars = 512 + (event.prompt?.length ?? 0) + (event.output_text?.length ?? 0);
  for (const m of event.messages ?? []) chars += m.content.length + 32;
  chars += (event.output_token_ids?.length ?? 0) * 7;
  return chars;
}

/** A router's bounded, acknowledged path from completion events to the completions stream. */
export class CapturePublisher {
  private readonly js: JetStreamClient;
  /** Oldest first; not yet sent, or sent and failed (retried first). */
  private readonly waiting: Entry[] = [];
  private readonly inFlight = new Set<Entry>();
  private bytes = 0;
  private retryDelay = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private pumpQueued = false;
  private closed = false;
  private onSettled: (() => void) | undefined;
  private readonly maxInFlight: number;

  constructor(private readonly deps: CapturePublisherDeps) {
    this.js = jetstream(deps.nc, { timeout: deps.options.ackTimeoutMs });
    this.maxInFlight = deps.maxInFlight ?? DEFAULT_CAPTURE_MAX_IN_FLIGHT;
  }

  /** Events held (waiting or awaiting their ack). */
  get size(): number {
    return this.waiting.length + this.inFlight.size;
  }

  /** Queues an event; never throws and never waits. Drops the oldest waiting events when full. */
  offer(event: CompletionEvent, trace?: Context): void {
    if (this.closed) {
      this.deps.metrics.dropped.inc({ reason: 'shutdown' });
      return;
    }
    const entry: Entry = { event, bytes: estimateBytes(event) };
    if (trace !== undefined) entry.headers = injectTrace(trace, natsHeaders());
    this.waiting.push(entry);
    this.bytes += entry.bytes;
    this.shed();
    this.schedule();
  }

  /**
   * Stops taking events and waits up to `graceMs` for those held to be acknowledged; what is left
   * is dropped and counted as `shutdown`.
   */
  async close(graceMs: number): Promise<void> {
    this.closed = true;
    if (this.size > 0) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.onSettled = undefined;
          resolve();
        };
        const timer = setTimeout(done, graceMs);
        this.onSettled = () => {
          if (this.size === 0) done();
        };
        this.schedule();
      });
    }
    clearTimeout(this.retryTimer);
    const left = this.size;
    if (left > 0) {
      this.deps.metrics.dropped.inc({ reason: 'shutdown' }, left);
      this.deps.log.warn({ events: left }, 'capture: events still buffered at shutdown were dropped');
    }
    this.waiting.length = 0;
    this.inFlight.clear();
  }

  /** Drops the oldest waiting events while the buffer is over its count or bytes. */
  private shed(): void {
    const { bufferEvents, bufferBytes } = this.deps.options;
    let dropped = 0;
    while ((this.size > bufferEvents || this.bytes > bufferBytes) && this.waiting.length > 0) {
      const oldest = this.waiting.shift()!;
      this.bytes -= oldest.bytes;
      dropped++;
    }
    if (dropped > 0) this.deps.metrics.dropped.inc({ reason: 'buffer_full' }, dropped);
  }

  private schedule(): void {
    if (this.pumpQueued || this.retryTimer !== undefined) return;
    this.pumpQueued = true;
    // Off the request's path: the event is prepared and encoded after the answer went out.
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    while (
      this.inFlight.size < this.maxInFlight &&
      this.waiting.length > 0 &&
      this.retryTimer === undefined
    ) {
      const entry = this.waiting.shift()!;
      if (!this.encode(entry)) continue;
      this.inFlight.add(entry);
      void this.send(entry);
    }
  }

  /** Prepares and encodes an entry; false (and counted) when it can never be stored. */
  private encode(entry: Entry): boolean {
    if (entry.data !== undefined) return true;
    const event = this.deps.prepare ? this.deps.prepare(entry.event) : entry.event;
    const data = encodeCaptureRecord(event);
    const limit = (this.deps.nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM_BYTES;
    this.bytes += data.length - entry.bytes;
    entry.bytes = data.length;
    if (data.length > limit) {
      this.bytes -= entry.bytes;
      this.deps.metrics.dropped.inc({ reason: 'too_large' });
      this.deps.log.warn(
        { requestId: event.request_id, bytes: data.length, limit },
        'capture: event larger than the server takes: dropped',
      );
      return false;
    }
    entry.event = event;
    entry.data = data;
    return true;
  }

  private async send(entry: Entry): Promise<void> {
    const { event } = entry;
    try {
      const ack = await this.js.publish(completionSubject(event.model), entry.data, {
        msgID: completionMsgId(event),
        ...(entry.headers !== undefined ? { headers: entry.headers } : {}),
      });
      this.inFlight.delete(entry);
      this.bytes -= entry.bytes;
      this.deps.metrics.published.inc({ outcome: ack.duplicate ? 'duplicate' : 'stored' });
      this.retryDelay = 0;
    } catch (err) {
      this.inFlight.delete(entry);
      this.deps.metrics.failures.inc();
      // Back to the front: the oldest events are retried first (and shed first when full).
      this.waiting.unshift(entry);
      this.backOff(err);
      this.shed();
    }
    this.onSettled?.();
    this.schedule();
  }

  private backOff(err: unknown): void {
    if (this.retryTimer !== undefined) return;
    this.retryDelay = Math.min(MAX_RETRY_DELAY_MS, Math.max(FIRST_RETRY_DELAY_MS, this.retryDelay * 2));
    if (this.retryDelay === FIRST_RETRY_DELAY_MS || this.retryDelay === MAX_RETRY_DELAY_MS) {
      this.deps.log.warn(
        {
          err: err instanceof Error ? err.message : String(err),
          buffered: this.size,
          retryInMs: this.retryDelay,
        },
        'capture: JetStream did not acknowledge; retrying',
      );
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.schedule();
    }, this.retryDelay);
    this.retryTimer.unref();
  }
}
