/** The collector's Prometheus metrics: what it consumed, how far behind it is, what it joined. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { COMPLETIONS_STREAM, FEEDBACK_STREAM } from '../cluster/subjects.ts';
import { actorRegistry } from '../telemetry/prometheus.ts';

/** Buckets of the time from an event's publish to its merge, seconds. */
const LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** One collector's instruments. */
export class CollectorMetrics {
  readonly registry: Registry;
  readonly consumedTotal: Counter<'stream'>;
  readonly rejected: Counter<'stream'>;
  readonly failed: Counter<'stream'>;
  readonly feedbackJoined: Counter;
  readonly lag: Gauge<'stream'>;
  readonly eventLag: Histogram<'stream'>;

  constructor(records: () => number, id = 'collector') {
    const registers = [(this.registry = actorRegistry({ collector: id }))];
    this.consumedTotal = new Counter({
      name: 'switchyard_collector_consumed_total',
      help: 'Stream messages merged into their records and acked.',
      labelNames: ['stream'],
      registers,
    });
    this.rejected = new Counter({
      name: 'switchyard_collector_rejected_total',
      help: 'Stream messages that could not be read (terminated, never redelivered).',
      labelNames: ['stream'],
      registers,
    });
    this.failed = new Counter({
      name: 'switchyard_collector_merge_failures_total',
      help: 'Merges that failed (the message is redelivered).',
      labelNames: ['stream'],
      registers,
    });
    this.feedbackJoined = new Counter({
      name: 'switchyard_collector_feedback_joined_total',
      help: 'Feedback items joined to their completion (whichever arrived second).',
      registers,
    });
    this.lag = new Gauge({
      name: 'switchyard_collector_consumer_lag_messages',
      help: 'Messages of the stream the collectors have not acked yet (pending + unacked).',
      labelNames: ['stream'],
      registers,
    });
    this.eventLag = new Histogram({
      name: 'switchyard_collector_event_lag_seconds',
      help: 'From the stream storing a message to its record being written.',
      labelNames: ['stream'],
      buckets: LAG_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'switchyard_collector_records',
      help: "Records (one per request id) in this collector's view.",
      registers,
      collect() {
        this.set(records());
      },
    });
    for (const stream of [COMPLETIONS_STREAM, FEEDBACK_STREAM]) {
      this.consumedTotal.inc({ stream }, 0);
      this.rejected.inc({ stream }, 0);
      this.lag.set({ stream }, 0);
    }
  }

  /** One message merged, `lagMs` after the stream stored it. */
  consumed(stream: string, lagMs: number): void {
    this.consumedTotal.inc({ stream });
    this.eventLag.observe({ stream }, Math.max(0, lagMs) / 1_000);
  }
}
