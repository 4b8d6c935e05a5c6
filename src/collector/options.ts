/** Collector actor options, their defaults, and the one function that fills and checks them. */
import type { ConnectionOptions } from '../cluster/connection.ts';
import { checkActorId, checkMetricsHost, checkMs } from '../config/checks.ts';
import {
  DEFAULT_CAPTURE_MAX_AGE_MS,
  DEFAULT_CAPTURE_MAX_BYTES,
  DEFAULT_CAPTURE_REPLICAS,
  type CaptureStreamOptions,
} from '../capture/streams.ts';

/**
 * The durable consumer every collector binds to, one per stream: collectors share its work
 * (a consumer group), and a restarted collector continues where the group stopped.
 */
export const COLLECTOR_DURABLE = 'sy-collector';
/** Messages one collector works on at once (its bounded in-flight, also the fetch size). */
export const DEFAULT_COLLECTOR_MAX_IN_FLIGHT = 64;
/** How long JetStream waits for an ack before it redelivers a message. */
export const DEFAULT_COLLECTOR_ACK_WAIT_MS = 30_000;
/** How often consumer lag is read for the lag gauge. */
export const DEFAULT_COLLECTOR_LAG_INTERVAL_MS = 2_000;

/** What a user sets to run a collector. */
export interface CollectorOptions {
  /** Unique id in the cluster. @default `collector-<host>-<random>` */
  id?: string;
  nats?: ConnectionOptions;
  /** How the capture streams and the records bucket are made (created at start when missing). */
  streams?: CaptureStreamOptions;
  /** @default DEFAULT_COLLECTOR_MAX_IN_FLIGHT */
  maxInFlight?: number;
  /** @default DEFAULT_COLLECTOR_ACK_WAIT_MS */
  ackWaitMs?: number;
  /** Port for Prometheus `/metrics`; 0 = off. @default 0 */
  metricsPort?: number;
  /** @default DEFAULT_METRICS_HOST */
  metricsHost?: string;
}

/** Collector options with every default filled in. */
export interface CompiledCollectorOptions {
  id: string;
  nats: ConnectionOptions;
  streams: Required<Pick<CaptureStreamOptions, 'replicas' | 'maxAgeMs' | 'maxBytes'>> & CaptureStreamOptions;
  maxInFlight: number;
  ackWaitMs: number;
  metricsPort: number;
  metricsHost: string;
}

/** Fills defaults and rejects bad values with a message naming the option. */
export function compileCollectorOptions(opts: CollectorOptions): CompiledCollectorOptions {
  const streams = opts.streams ?? {};
  return {
    id: checkActorId('collector', opts.id),
    nats: opts.nats ?? {},
    streams: {
      ...streams,
      replicas: checkMs('streams.replicas', streams.replicas, DEFAULT_CAPTURE_REPLICAS),
      maxAgeMs: checkMs('streams.maxAgeMs', streams.maxAgeMs, DEFAULT_CAPTURE_MAX_AGE_MS),
      maxBytes: checkMs('streams.maxBytes', streams.maxBytes, DEFAULT_CAPTURE_MAX_BYTES),
    },
    maxInFlight: checkMs('maxInFlight', opts.maxInFlight, DEFAULT_COLLECTOR_MAX_IN_FLIGHT),
    ackWaitMs: checkMs('ackWaitMs', opts.ackWaitMs, DEFAULT_COLLECTOR_ACK_WAIT_MS),
    metricsPort: checkMs('metricsPort', opts.metricsPort, 0, 0),
    metricsHost: checkMetricsHost(opts.metricsHost),
  };
}
