/** Replica actor options, their defaults, and the one function that fills and checks them. */
import type { ConnectionOptions } from '../cluster/connection.ts';
import { checkActorId, checkMetricsHost, checkMs } from '../config/checks.ts';
import type { EngineOptions } from '../engine/options.ts';
import { defaultModelCacheDir } from '../registry/cache.ts';

/** Heartbeat period: routers count missed beats, so failover speed follows from it. */
export const DEFAULT_REPLICA_HEARTBEAT_INTERVAL_MS = 200;
/** How long SIGTERM waits for in-flight requests before handing the rest over. */
export const DEFAULT_DRAIN_GRACE_MS = 10_000;
/** A router silent this long is gone: its requests are cancelled so they free their slots. */
export const DEFAULT_ORPHAN_TIMEOUT_MS = 2_000;

/** What a user sets to run a replica. */
export interface ReplicaOptions {
  /** Unique id in the cluster ([A-Za-z0-9_-]{1,64}). @default `replica-<host>-<random>` */
  id?: string;
  /** How to reach NATS. */
  nats?: ConnectionOptions;
  /** The engine: model folder, device, threads, batch and queue limits. */
  engine: EngineOptions;
  /** @default DEFAULT_REPLICA_HEARTBEAT_INTERVAL_MS */
  heartbeatIntervalMs?: number;
  /** @default DEFAULT_DRAIN_GRACE_MS */
  drainGraceMs?: number;
  /** @default DEFAULT_ORPHAN_TIMEOUT_MS */
  orphanTimeoutMs?: number;
  /** Run one real generation before announcing readiness. @default true */
  warmup?: boolean;
  /** Accept fault injection on the replica's fault subject (tests and chaos only). @default false */
  allowFaultInjection?: boolean;
  /** Port for Prometheus `/metrics`; 0 = off. @default 0 */
  metricsPort?: number;
  /** Address `/metrics` listens on (a pod's must be scrapable). @default DEFAULT_METRICS_HOST */
  metricsHost?: string;
  /**
   * Log each request's prompt and generated text when it ends (debugging a model, never by
   * default: prompts are the users' data). @default false
   */
  logPrompts?: boolean;
  /**
   * Serve with the echo engine (tokens echoed back, no inference): only for router benchmarks.
   * @default false
   */
  echo?: boolean;
  /** Where registry versions are cached by digest. @default defaultModelCacheDir() */
  modelCacheDir?: string;
  /**
   * How long resolving a registry model may wait for JetStream before the replica falls back to
   * its local digest cache. @default DEFAULT_REGISTRY_TIMEOUT_MS
   */
  registryTimeoutMs?: number;
}

/** How long a replica waits for the registry before it starts from its local cache instead. */
export const DEFAULT_REGISTRY_TIMEOUT_MS = 5_000;

/** Replica options with every default filled in. */
export interface CompiledReplicaOptions {
  id: string;
  nats: ConnectionOptions;
  engine: EngineOptions;
  heartbeatIntervalMs: number;
  drainGraceMs: number;
  orphanTimeoutMs: number;
  warmup: boolean;
  allowFaultInjection: boolean;
  metricsPort: number;
  metricsHost: string;
  logPrompts: boolean;
  echo: boolean;
  modelCacheDir: string;
  registryTimeoutMs: number;
}

/** Fills defaults and rejects contradictions with a message naming the option. */
export function compileReplicaOptions(opts: ReplicaOptions): CompiledReplicaOptions {
  const heartbeatIntervalMs = checkMs(
    'heartbeatIntervalMs',
    opts.heartbeatIntervalMs,
    DEFAULT_REPLICA_HEARTBEAT_INTERVAL_MS,
  );
  const orphanTimeoutMs = checkMs('orphanTimeoutMs', opts.orphanTimeoutMs, DEFAULT_ORPHAN_TIMEOUT_MS);
  return {
    id: checkActorId('replica', opts.id),
    nats: opts.nats ?? {},
    engine: { ...opts.engine, allowFaultInjection: opts.allowFaultInjection ?? false },
    heartbeatIntervalMs,
    drainGraceMs: checkMs('drainGraceMs', opts.drainGraceMs, DEFAULT_DRAIN_GRACE_MS, 0),
    orphanTimeoutMs,
    warmup: opts.warmup ?? true,
    allowFaultInjection: opts.allowFaultInjection ?? false,
    metricsPort: checkMs('metricsPort', opts.metricsPort, 0, 0),
    metricsHost: checkMetricsHost(opts.metricsHost),
    logPrompts: opts.logPrompts ?? false,
    echo: opts.echo ?? false,
    modelCacheDir: opts.modelCacheDir ?? defaultModelCacheDir(),
    registryTimeoutMs: checkMs('registryTimeoutMs', opts.registryTimeoutMs, DEFAULT_REGISTRY_TIMEOUT_MS),
  };
}
