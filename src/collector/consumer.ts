/**
 * One stream's durable consumer as a collector drives it: messages are pulled (at most
 * `maxInFlight` unacked at this collector), each is merged into its record and acked only once
 * the record is written, so a collector killed mid-merge loses nothing: JetStream redelivers
 * the message after `ack_wait`, and merging it again gives the same record (record.ts), so
 * nothing is counted twice either. A message that cannot be read is terminated (never
 * redelivered) and counted.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import type { Logger } from '../telemetry/logger.ts';
import { COLLECTOR_DURABLE } from './options.ts';

/** Nanoseconds per millisecond. */
const NS_PER_MS = 1_000_000;

/** How long one pull waits at the server; its idle heartbeat is half of it. */
export const PULL_EXPIRES_MS = 5_000;

/** What a consumer does with one message: resolves once its record is written. */
export type MessageHandler = (msg: JsMsg) => Promise<void>;

/** Counts a consumer reports (the collector's metrics). */
export interface ConsumerHooks {
  consumed(stream: string, lagMs: number): void;
  rejected(stream: string): void;
  failed(stream: string): void;
}

/** One running durable consumer. */
export interface RunningConsumer {
  stop(): Promise<void>;
  /** Messages of the stream not yet delivered to the group, and delivered but unacked. */
  lag(): Promise<{ pending: number; unacked: number }>;
}

/** Creates the stream's durable consumer when missing (shared by every collector) and runs it. */
export async function runConsumer(
  nc: NatsConnection,
  stream: string,
  opts: { maxInFlight: number; ackWaitMs: number },
  handle: MessageHandler,
  hooks: ConsumerHooks,
  log: Logger,
): Promise<RunningConsumer> {
  const jsm = await jetstreamManager(nc);
  const config = {
    durable_name: COLLECTOR_DURABLE,
    ack_policy: 'explicit' as const,
    deliver_policy: 'all' as const,
    ack_wait: opts.ackWaitMs * NS_PER_MS,
    // The group's unacked messages: every collector's in-flight together.
    max_ack_pending: Math.max(1_000, opts.maxInFlight * 16),
  };
  const existing = await jsm.consumers.info(stream, COLLECTOR_DURABLE).catch(() => undefined);
  if (existing === undefined) await jsm.consumers.add(stream, config);
  const consumer = await jetstream(nc).consumers.get(stream, COLLECTOR_DURABLE);
  // A short pull expiry: a pull lost with a NATS node is noticed within two idle heartbeats
  // (half the expiry each), not nats.js' default 30 s.
  const messages = await consumer.consume({ max_messages: opts.maxInFlight, expires: PULL_EXPIRES_MS });
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const work = new Set<Promise<void>>();
  const loop = (async () => {
    for await (const msg of messages) {
      while (inFlight >= opts.maxInFlight) await new Promise<void>((resolve) => (wake = resolve));
      inFlight++;
      const job = process(msg).finally(() => {
        inFlight--;
        work.delete(job);
        wake?.();
        wake = undefined;
      });
      work.add(job);
    }
  })();

  async function process(msg: JsMsg): Promise<void> {
    try {
      await handle(msg);
      msg.ack();
      hooks.consumed(stream, Date.now() - Number(msg.info.timestampNanos) / NS_PER_MS);
    } catch (err) {
      if (err instanceof UnreadableMessage) {
        msg.term(err.message);
        hooks.rejected(stream);
        log.warn({ stream, seq: msg.seq, err: err.message }, 'collector: unreadable message terminated');
        return;
      }
      // Not written: JetStream redelivers it (soon, not after the whole ack wait).
      msg.nak(1_000);
      hooks.failed(stream);
      log.warn(
        { stream, seq: msg.seq, err: err instanceof Error ? err.message : String(err) },
        'collector: merge failed; redelivery asked',
      );
    }
  }

  return {
    async stop() {
      messages.stop();
      await loop.catch(() => undefined);
      await Promise.allSettled([...work]);
    },
    async lag() {
      const info = await jsm.consumers.info(stream, COLLECTOR_DURABLE);
      return { pending: info.num_pending, unacked: info.num_ack_pending };
    },
  };
}

/** Thrown by a handler for a message that no retry can make readable (it is terminated). */
export class UnreadableMessage extends Error {
  override readonly name = 'UnreadableMessage';
}
