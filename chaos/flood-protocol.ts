/** The IPC messages between the runner and a flood process (chaos/flood-entry.ts). */
import type { LoadItem } from './load-protocol.ts';

/** How a phase offers its requests. */
export type FloodMode =
  /** `concurrency` requests in flight at all times (capacity measurement). */
  | { kind: 'closed'; concurrency: number }
  /** Requests start at `ratePerS` whatever answers come back (the overload itself). */
  | { kind: 'open'; ratePerS: number };

/** One phase of a flood: a measurement or an overload round. */
export interface FloodPhase {
  name: string;
  mode: FloodMode;
  durationMs: number;
  /** Share of the requests sent over NATS with the client library instead of HTTP, 0 … 1. */
  natsShare: number;
}

/** What a flood process is told once: where to send and what. */
export interface FloodSetup {
  /** Bridge base URLs (`http://127.0.0.1:port`), used round-robin. */
  bridges: string[];
  nats: { servers: string[]; nkeySeedFile: string };
  items: LoadItem[];
  /** A request with no answer by then is counted hung. */
  timeoutMs: number;
  /**
   * Most requests the flood itself keeps open at once: an open-loop arrival that finds this
   * many is counted `notSent` (the flood, not the cluster, was the limit).
   */
  maxOutstanding: number;
}

/** What one phase measured. */
export interface FloodStats {
  phase: string;
  elapsedMs: number;
  /** Requests started, over HTTP and NATS. */
  sent: number;
  /** Open-loop arrivals skipped because `maxOutstanding` were open. */
  notSent: number;
  /** HTTP answers by status ("200", "429", ...). */
  httpStatus: Record<string, number>;
  /** 429 answers without a valid Retry-After (a positive integer of seconds). */
  missingRetryAfter: number;
  /** NATS outcomes by code ("ok", "busy", ...). */
  natsCodes: Record<string, number>;
  /** Transport failures (connection reset, refused, bad JSON) by message. */
  transportErrors: Record<string, number>;
  /** No answer within `timeoutMs`. */
  hung: number;
  /** Completed requests (HTTP 200 and NATS ok). */
  completed: number;
  completionTokens: number;
  /** Completions whose text differs from the reference or that lack tokens. */
  different: number;
  /** Completed requests per second of the phase. */
  completedPerS: number;
  tokensPerS: number;
  /** Time to a refusal (429 or busy), p50 / p99 / max, ms: refusing must be quick. */
  refusalMs: { p50: number; p99: number; max: number };
  /** The flood process's own event-loop delay p99, ms (a lagging flood under-offers). */
  floodLoopDelayP99Ms: number;
}

/** Runner → flood process. */
export type ToFlood = { type: 'setup'; setup: FloodSetup } | { type: 'phase'; phase: FloodPhase };

/** Flood process → runner. */
export type FromFlood =
  { type: 'ready' } | { type: 'stats'; stats: FloodStats } | { type: 'failed'; message: string };
