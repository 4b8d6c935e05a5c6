/**
 * A replica's Prometheus metrics. Load gauges are read from the engine at scrape time; the batch
 * size is observed once per forward pass (the engine's `onStep`, on the main thread, never in
 * the worker's step loop); request counters move where requests are accepted or refused.
 */
import type { VersionedEngine } from './versions.ts';
import { actorRegistry, Counter, Gauge, Histogram, scraped, type Registry } from '../telemetry/prometheus.ts';

/** Buckets of rows per forward pass (powers of two up to a large GPU batch). */
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/** What the metrics read from the replica at scrape time. */
export interface ReplicaMetricsSource {
  readonly id: string;
  readonly engine: VersionedEngine;
  heartbeatsSent(): number;
}

/** One replica's registry and the instruments its code updates. */
export class ReplicaMetrics {
  readonly registry: Registry;
  readonly accepted: Counter;
  readonly refused: Counter<'code'>;
  readonly orphansCancelled: Counter;
  readonly swaps: Counter<'outcome'>;

  constructor(source: ReplicaMetricsSource) {
    const { engine } = source;
    // No version label: a hot swap changes the version, and series must not lie after it (the
    // version is in switchyard_model_version_info).
    const registry = actorRegistry({ replica: source.id, model: engine.info.id });
    const registers = [registry];
    this.registry = registry;
    scraped(
      registry,
      'gauge',
      'switchyard_queue_depth',
      'Requests waiting beyond the running batch.',
      () => engine.stats().queueDepth,
    );
    scraped(
      registry,
      'gauge',
      'switchyard_active_sequences',
      'Sequences in the running batch.',
      () => engine.stats().activeSequences,
    );
    scraped(
      registry,
      'gauge',
      'switchyard_token_budget_used_ratio',
      'Share of the KV token budget reserved by running sequences.',
      () => {
        const stats = engine.stats();
        return 1 - stats.freeTokenBudget / stats.tokenBudget;
      },
    );
    const steps = new Counter({
      name: 'switchyard_engine_steps_total',
      help: 'Forward passes of the engine (its progress counter), by phase.',
      labelNames: ['phase'],
      registers,
    });
    const batchSize = new Histogram({
      name: 'switchyard_batch_size',
      help: 'Rows per forward pass, by phase (prefill of newcomers, decode of the running batch).',
      labelNames: ['phase'],
      buckets: BATCH_SIZE_BUCKETS,
      registers,
    });
    engine.onStep = (step) => {
      steps.inc({ phase: step.kind });
      batchSize.observe({ phase: step.kind }, step.batchSize);
    };
    this.accepted = new Counter({
      name: 'switchyard_replica_requests_total',
      help: 'Generate requests (attempts) this replica accepted.',
      registers,
    });
    this.refused = new Counter({
      name: 'switchyard_replica_refused_total',
      help: 'Generate requests refused at once, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.orphansCancelled = new Counter({
      name: 'switchyard_orphans_cancelled_total',
      help: 'Requests cancelled because their router went silent.',
      registers,
    });
    new Gauge({
      name: 'switchyard_model_version_info',
      help: 'The model versions loaded: current (new requests get it) and retiring (finishing its requests after a hot swap); always 1.',
      labelNames: ['version', 'digest', 'role'],
      registers,
      collect() {
        this.reset();
        const { current, retiring } = source.engine;
        this.set({ version: current.engine.info.version, digest: current.digest, role: 'current' }, 1);
        for (const v of retiring)
          this.set({ version: v.engine.info.version, digest: v.digest, role: 'retiring' }, 1);
      },
    });
    this.swaps = new Counter({
      name: 'switchyard_model_swaps_total',
      help: 'Hot swaps, by outcome: swapped (new requests get the new version), failed (the old one serves on), released (a retired version was stopped).',
      labelNames: ['outcome'],
      registers,
    });
    scraped(registry, 'counter', 'switchyard_heartbeats_sent_total', 'Heartbeats published.', () =>
      source.heartbeatsSent(),
    );
  }
}
