/**
 * The capture streams: completion events and feedback, each a JetStream stream with bounded
 * retention (age and bytes, oldest discarded first) and a duplicate window for the request-id
 * message ids. The collector creates them at start (and `up` through it); routers and bridges
 * only publish, so a cluster without a collector still keeps every event the streams hold.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager, type StreamConfig } from '@nats-io/jetstream';
import {
  ALL_COMPLETIONS,
  COMPLETIONS_STREAM,
  FEEDBACK_STREAM,
  FEEDBACK_SUBJECT,
} from '../cluster/subjects.ts';
import { isJetStreamForming, whileJetStreamForms } from '../cluster/jetstream-forming.ts';

/** Nanoseconds per millisecond (JetStream durations are nanoseconds). */
const NS_PER_MS = 1_000_000;

/** Default retention by age of both streams: 30 days. */
export const DEFAULT_CAPTURE_MAX_AGE_MS = 30 * 24 * 3_600_000;
/** Default retention by size of the completions stream: 1 GiB. */
export const DEFAULT_CAPTURE_MAX_BYTES = 1024 ** 3;
/** Default stream replicas (1: `up`'s single nats-server; 3 on a 3-node cluster). */
export const DEFAULT_CAPTURE_REPLICAS = 1;
/**
 * How long JetStream remembers a message id (its duplicate window): a router that re-publishes an
 * event after a lost ack within this window stores it once.
 */
export const CAPTURE_DUPLICATE_WINDOW_MS = 10 * 60_000;

/** How the capture streams are made. */
export interface CaptureStreamOptions {
  /** Stream replicas (≤ the NATS cluster's JetStream nodes). @default 1 */
  replicas?: number;
  /** Retention by age. @default 30 days */
  maxAgeMs?: number;
  /** Retention by size of the completions stream (feedback gets a tenth). @default 1 GiB */
  maxBytes?: number;
  /** @default 'file' */
  storage?: 'file' | 'memory';
}

/** The stream configs, as created (exported for docs and tests). */
export function captureStreamConfigs(
  opts: CaptureStreamOptions = {},
): Array<Partial<StreamConfig> & { name: string }> {
  const maxAge = (opts.maxAgeMs ?? DEFAULT_CAPTURE_MAX_AGE_MS) * NS_PER_MS;
  const maxBytes = opts.maxBytes ?? DEFAULT_CAPTURE_MAX_BYTES;
  const common = {
    num_replicas: opts.replicas ?? DEFAULT_CAPTURE_REPLICAS,
    max_age: maxAge,
    duplicate_window: Math.min(maxAge, CAPTURE_DUPLICATE_WINDOW_MS * NS_PER_MS),
    storage: opts.storage ?? 'file',
    discard: 'old',
  } as const;
  return [
    { name: COMPLETIONS_STREAM, subjects: [ALL_COMPLETIONS], max_bytes: maxBytes, ...common },
    {
      name: FEEDBACK_STREAM,
      subjects: [FEEDBACK_SUBJECT],
      max_bytes: Math.max(1024 * 1024, Math.floor(maxBytes / 10)),
      ...common,
    },
  ] as Array<Partial<StreamConfig> & { name: string }>;
}

/**
 * Creates the capture streams, or updates their retention when they exist (a restart with new
 * limits applies them). Idempotent; throws the server's error when JetStream refuses.
 */
export async function ensureCaptureStreams(
  nc: NatsConnection,
  opts: CaptureStreamOptions = {},
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const config of captureStreamConfigs(opts)) {
    const name = config.name;
    // A clustered JetStream still electing its leaders answers "not yet": retried for a while.
    await whileJetStreamForms(async () => {
      const existing = await jsm.streams.info(name).catch((err: unknown) => {
        if (isJetStreamForming(err)) throw err;
        return undefined;
      });
      if (existing === undefined) await jsm.streams.add(config);
      else await jsm.streams.update(name, { ...existing.config, ...config });
    });
  }
}
