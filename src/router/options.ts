/** Router actor options, their defaults, and the one function that fills and checks them. */
import type { ConnectionOptions } from '../cluster/connection.ts';
import { StartupError } from '../errors/errors.ts';
import { checkActorId, checkMetricsHost, checkMs } from '../config/checks.ts';
import {
  compileCaptureOptions,
  type CaptureOptions,
  type CompiledCaptureOptions,
} from '../capture/options.ts';

/** Router heartbeat period (replicas and clients watch it to find orphaned requests). */
export const DEFAULT_ROUTER_HEARTBEAT_INTERVAL_MS = 200;
/** Replica heartbeats missed before it is suspect (no new work goes to it). */
export const DEFAULT_SUSPECT_AFTER_MISSED = 2;
/** Replica heartbeats missed before it is dead (its requests fail over). */
export const DEFAULT_DEAD_AFTER_MISSED = 3;
/** A replica whose engine progress stands still this long while it has work is stuck: dead. */
export const DEFAULT_STUCK_TIMEOUT_MS = 1_500;
/**
 * Silence (no chunk, no keepalive) this long after a replica acked: the attempt has stalled and
 * fails over. A replica keeps a queued request alive with keepalives every second.
 */
export const DEFAULT_STALL_TIMEOUT_MS = 3_000;
/**
 * Replica attempts per request, the first included, counted across client resends (one budget:
 * a resend carries the attempt number it starts at in Sy-Attempt).
 */
export const DEFAULT_MAX_ATTEMPTS = 4;
/** Requests one router owns at once; one more is refused with `busy`. */
export const DEFAULT_MAX_IN_FLIGHT = 1_024;
/** How long SIGTERM waits for in-flight requests before failing them over to other routers. */
export const DEFAULT_ROUTER_DRAIN_GRACE_MS = 10_000;
/** Deadline of a request that gives none. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;
/** Routing strategies by name. */
export const ROUTING_STRATEGIES = ['power-of-two', 'least-loaded', 'round-robin'] as const;
/** One of {@link ROUTING_STRATEGIES}. */
export type RoutingStrategyName = (typeof ROUTING_STRATEGIES)[number];

/** What a user sets to run a router. */
export interface RouterOptions {
  /** Unique id in the cluster. @default `router-<host>-<random>` */
  id?: string;
  /** How to reach NATS. */
  nats?: ConnectionOptions;
  /** @default DEFAULT_ROUTER_HEARTBEAT_INTERVAL_MS */
  heartbeatIntervalMs?: number;
  /** @default DEFAULT_SUSPECT_AFTER_MISSED */
  suspectAfterMissed?: number;
  /** @default DEFAULT_DEAD_AFTER_MISSED */
  deadAfterMissed?: number;
  /** @default DEFAULT_STUCK_TIMEOUT_MS */
  stuckTimeoutMs?: number;
  /** @default DEFAULT_STALL_TIMEOUT_MS */
  stallTimeoutMs?: number;
  /** @default DEFAULT_MAX_ATTEMPTS */
  maxAttempts?: number;
  /** @default DEFAULT_MAX_IN_FLIGHT */
  maxInFlight?: number;
  /** @default DEFAULT_REQUEST_TIMEOUT_MS */
  requestTimeoutMs?: number;
  /** @default 'power-of-two' */
  strategy?: RoutingStrategyName;
  /** How long SIGTERM waits for in-flight requests. @default DEFAULT_ROUTER_DRAIN_GRACE_MS */
  drainGraceMs?: number;
  /** Port for Prometheus `/metrics`; 0 = off. @default 0 */
  metricsPort?: number;
  /** Address `/metrics` listens on (a pod's must be scrapable). @default DEFAULT_METRICS_HOST */
  metricsHost?: string;
  /** What this router captures into the completions stream (README, "Capture"). */
  capture?: CaptureOptions;
  /**
   * In-process hook (tests, bench:rollout): a model's rollout change, of KV revision `revision`,
   * now routes new requests. Not a configuration option.
   */
  onRolloutApplied?: (model: string, revision: number) => void;
}

/** Router options with every default filled in. */
export interface CompiledRouterOptions {
  id: string;
  nats: ConnectionOptions;
  heartbeatIntervalMs: number;
  suspectAfterMissed: number;
  deadAfterMissed: number;
  stuckTimeoutMs: number;
  stallTimeoutMs: number;
  maxAttempts: number;
  maxInFlight: number;
  requestTimeoutMs: number;
  strategy: RoutingStrategyName;
  drainGraceMs: number;
  metricsPort: number;
  metricsHost: string;
  capture: CompiledCaptureOptions;
  onRolloutApplied?: (model: string, revision: number) => void;
}

/** Fills defaults and rejects contradictions with a message naming the option. */
export function compileRouterOptions(opts: RouterOptions): CompiledRouterOptions {
  const suspectAfterMissed = checkMs(
    'suspectAfterMissed',
    opts.suspectAfterMissed,
    DEFAULT_SUSPECT_AFTER_MISSED,
  );
  const deadAfterMissed = checkMs('deadAfterMissed', opts.deadAfterMissed, DEFAULT_DEAD_AFTER_MISSED);
  if (deadAfterMissed < suspectAfterMissed) {
    throw new StartupError(
      'config',
      `deadAfterMissed (${deadAfterMissed}) must be >= suspectAfterMissed (${suspectAfterMissed})`,
    );
  }
  const strategy = opts.strategy ?? 'power-of-two';
  if (!(ROUTING_STRATEGIES as readonly string[]).includes(strategy)) {
    throw new StartupError(
      'config',
      `strategy must be one of ${ROUTING_STRATEGIES.join(', ')}, got '${strategy}'`,
    );
  }
  return {
    id: checkActorId('router', opts.id),
    nats: opts.nats ?? {},
    heartbeatIntervalMs: checkMs(
      'heartbeatIntervalMs',
      opts.heartbeatIntervalMs,
      DEFAULT_ROUTER_HEARTBEAT_INTERVAL_MS,
    ),
    suspectAfterMissed,
    deadAfterMissed,
    stuckTimeoutMs: checkMs('stuckTimeoutMs', opts.stuckTimeoutMs, DEFAULT_STUCK_TIMEOUT_MS),
    stallTimeoutMs: checkMs('stallTimeoutMs', opts.stallTimeoutMs, DEFAULT_STALL_TIMEOUT_MS),
    maxAttempts: checkMs('maxAttempts', opts.maxAttempts, DEFAULT_MAX_ATTEMPTS),
    maxInFlight: checkMs('maxInFlight', opts.maxInFlight, DEFAULT_MAX_IN_FLIGHT),
    requestTimeoutMs: checkMs('requestTimeoutMs', opts.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS),
    strategy,
    drainGraceMs: checkMs('drainGraceMs', opts.drainGraceMs, DEFAULT_ROUTER_DRAIN_GRACE_MS, 0),
    metricsPort: checkMs('metricsPort', opts.metricsPort, 0, 0),
    metricsHost: checkMetricsHost(opts.metricsHost),
    capture: compileCaptureOptions(opts.capture),
    ...(opts.onRolloutApplied !== undefined ? { onRolloutApplied: opts.onRolloutApplied } : {}),
  };
}
