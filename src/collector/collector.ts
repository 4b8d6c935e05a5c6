/**
 * The collector actor: the durable record of what the cluster served. It consumes the
 * completions and feedback streams with durable consumers shared by every collector (a consumer
 * group: any number may run, each takes part of the work, and one that dies leaves its unacked
 * messages to be redelivered to the others), merges each message into its request's record in
 * the records bucket with compare-and-set, and answers `stats` and `export` requests from its
 * view of the bucket, which every collector keeps whole.
 *
 * Why a group and not one active collector with fail-over: merges are idempotent and
 * order-independent per record (record.ts), so concurrent collectors need no election, and a
 * dead one costs no take-over delay, only the ack wait of the messages it held.
 */
import { randomUUID } from 'node:crypto';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import type { JsMsg } from '@nats-io/jetstream';
import { SpanKind, context } from '@opentelemetry/api';
import { connectNats } from '../cluster/connection.ts';
import { captureKey, decodeCompletionEvent, decodeFeedback } from '../cluster/messages/capture.ts';
import {
  EXPORT_PAGE_BYTES,
  decodeExportRequest,
  decodePageRequest,
  type ExportPage,
} from '../cluster/messages/collector.ts';
import {
  COLLECTOR_QUEUE_GROUP,
  COMPLETIONS_STREAM,
  FEEDBACK_STREAM,
  actorInboxPrefix,
  collectorPageSubject,
  collectorSubject,
} from '../cluster/subjects.ts';
import { heartbeatStateOf, type ActorState } from '../cluster/actor-state.ts';
import { ensureCaptureStreams } from '../capture/streams.ts';
import { StartupError, toSwitchyardError } from '../errors/errors.ts';
import { createLogger, type Logger } from '../telemetry/logger.ts';
import { serveMetrics, type MetricsServer } from '../telemetry/prometheus.ts';
import { endSpan, extractTrace, tracer } from '../telemetry/propagation.ts';
import { runConsumer, UnreadableMessage, type RunningConsumer } from './consumer.ts';
import { exportDataset } from './datasets.ts';
import { CollectorMetrics } from './metrics.ts';
import {
  compileCollectorOptions,
  DEFAULT_COLLECTOR_LAG_INTERVAL_MS,
  type CollectorOptions,
} from './options.ts';
import { mergeCompletion, mergeFeedback } from './record.ts';
import { RecordStore } from './records.ts';
import { versionStats } from './stats.ts';
import { RolloutDriver } from '../rollout/driver.ts';
import { RolloutMetrics } from '../rollout/metrics.ts';

/** How long an export snapshot waits for its next page request. */
export const SNAPSHOT_TTL_MS = 5 * 60_000;
/** Export snapshots one collector holds at once (the oldest is dropped past it). */
const MAX_SNAPSHOTS = 8;

/** A running collector. */
export interface Collector {
  readonly id: string;
  readonly state: ActorState;
  /** Records in this collector's view. */
  readonly records: RecordStore;
  stop(): Promise<void>;
  readonly closed: Promise<void>;
}

interface Snapshot {
  lines: string[];
  counts: Record<string, number>;
  seqRange: { first: number; last: number } | null;
  expires: number;
}

/** Starts a collector; resolves once it consumes and answers. */
export async function startCollector(opts: CollectorOptions): Promise<Collector> {
  const options = compileCollectorOptions(opts);
  const log = createLogger({ role: 'collector', id: options.id });
  const inboxPrefix = options.nats.inboxPrefix ?? actorInboxPrefix('collector', options.id);
  const nc = await connectNats({ name: `collector-${options.id}`, ...options.nats, inboxPrefix });
  try {
    await ensureCaptureStreams(nc, options.streams).catch((err: unknown) => {
      throw new StartupError(
        'dependency',
        `cannot create the capture streams: ${err instanceof Error ? err.message : String(err)}; ` +
          'the collector needs JetStream on the NATS server (nats-server -js, or `jetstream {}` in its ' +
          'config); `switchyard up --collector=false` runs without one',
        { cause: err },
      );
    });
    const records = await RecordStore.open(nc, options.streams, log);
    const actor = new CollectorActor(options.id, nc, log, records);
    await actor.start(options);
    return actor;
  } catch (err) {
    await nc.close().catch(() => undefined);
    throw err;
  }
}

class CollectorActor implements Collector {
  state: ActorState = 'starting';
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private readonly metrics: CollectorMetrics;
  private readonly consumers: RunningConsumer[] = [];
  private readonly subs: Subscription[] = [];
  private readonly snapshots = new Map<string, Snapshot>();
  private metricsServer: MetricsServer | undefined;
  private driver: RolloutDriver | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;

  constructor(
    readonly id: string,
    private readonly nc: NatsConnection,
    private readonly log: Logger,
    readonly records: RecordStore,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.metrics = new CollectorMetrics(() => records.size, id);
  }

  async start(options: ReturnType<typeof compileCollectorOptions>): Promise<void> {
    const hooks = {
      consumed: (stream: string, lagMs: number) => this.metrics.consumed(stream, lagMs),
      rejected: (stream: string) => this.metrics.rejected.inc({ stream }),
      failed: (stream: string) => this.metrics.failed.inc({ stream }),
    };
    const consumerOptions = { maxInFlight: options.maxInFlight, ackWaitMs: options.ackWaitMs };
    this.consumers.push(
      await runConsumer(
        this.nc,
        COMPLETIONS_STREAM,
        consumerOptions,
        (m) => this.onCompletion(m),
        hooks,
        this.log,
      ),
      await runConsumer(
        this.nc,
        FEEDBACK_STREAM,
        consumerOptions,
        (m) => this.onFeedback(m),
        hooks,
        this.log,
      ),
    );
    const serve = (subject: string, queue: string | undefined, handle: (msg: Msg) => unknown): void => {
      this.subs.push(
        this.nc.subscribe(subject, {
          ...(queue !== undefined ? { queue } : {}),
          callback: (err, msg) => {
            if (!err) this.answer(msg, handle);
          },
        }),
      );
    };
    serve(collectorSubject('stats'), COLLECTOR_QUEUE_GROUP, () => ({
      collector: this.id,
      records: this.records.size,
      versions: versionStats(this.records.records()),
      // Each model's rollout with its recorded decisions: the web page's cluster view shows them.
      rollouts: this.driver?.view() ?? [],
    }));
    serve(collectorSubject('export'), COLLECTOR_QUEUE_GROUP, (msg) => this.exportFirst(msg));
    serve(collectorPageSubject(this.id), undefined, (msg) => this.exportPage(msg));
    this.lagTimer = setInterval(() => void this.readLag(), DEFAULT_COLLECTOR_LAG_INTERVAL_MS).unref();
    // Rollouts are judged on these records: every collector drives them (see src/rollout/driver.ts).
    this.driver = new RolloutDriver({
      nc: this.nc,
      id: this.id,
      log: this.log,
      records: () => this.records.records(),
      metrics: new RolloutMetrics(this.metrics.registry),
    });
    await this.driver.start().catch((err: unknown) => {
      throw new StartupError(
        'dependency',
        `cannot start the rollout driver: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    });
    if (options.metricsPort > 0) {
      this.metricsServer = await serveMetrics(
        options.metricsPort,
        this.metrics.registry,
        options.metricsHost,
      );
    }
    await this.nc.flush();
    this.state = 'running';
    void this.nc.closed().then((err) => {
      // Closed under a running collector: an error. Closed by its own drain: the orderly stop.
      if (this.state === 'running') {
        this.log.error({ err }, 'NATS connection closed; stopping');
        void this.stop();
      }
    });
    this.log.info({ records: this.records.size, metrics: this.metricsServer?.url }, 'collector ready');
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /** Merges a completion event into its record, in a span of the request's trace. */
  private async onCompletion(msg: JsMsg): Promise<void> {
    await this.traced(msg, 'collector merge completion', async () => {
      let event;
      try {
        event = decodeCompletionEvent(msg.data);
      } catch (err) {
        throw new UnreadableMessage(toSwitchyardError(err).message);
      }
      let joined = false;
      const result = await this.records.merge(captureKey(event.request_id, event.requester), (record) => {
        const next = mergeCompletion(record, event, msg.seq);
        joined = next !== record && record?.feedback !== undefined && record.completion === undefined;
        return next;
      });
      if (result === 'changed' && joined) this.metrics.feedbackJoined.inc();
    });
  }

  private async onFeedback(msg: JsMsg): Promise<void> {
    await this.traced(msg, 'collector merge feedback', async () => {
      let feedback;
      try {
        feedback = decodeFeedback(msg.data);
      } catch (err) {
        throw new UnreadableMessage(toSwitchyardError(err).message);
      }
      let joined = false;
      const result = await this.records.merge(
        captureKey(feedback.request_id, feedback.requester),
        (record) => {
          const next = mergeFeedback(record, feedback, msg.seq);
          joined = next !== record && record?.completion !== undefined;
          return next;
        },
      );
      if (result === 'changed' && joined) this.metrics.feedbackJoined.inc();
    });
  }

  private async traced(msg: JsMsg, name: string, work: () => Promise<void>): Promise<void> {
    const parent = extractTrace(msg.headers);
    const span = tracer().startSpan(
      name,
      {
        kind: SpanKind.CONSUMER,
        attributes: { 'messaging.system': 'nats', 'messaging.destination.name': msg.subject },
      },
      parent,
    );
    try {
      await context.with(parent, work);
      endSpan(span);
    } catch (err) {
      endSpan(span, err);
      throw err;
    }
  }

  /** Replies with `handle`'s JSON, or with `{ error: { code, message } }` when it throws. */
  private answer(msg: Msg, handle: (msg: Msg) => unknown): void {
    if (!msg.reply) return;
    let body: unknown;
    try {
      body = handle(msg);
    } catch (err) {
      const e = toSwitchyardError(err);
      body = { error: { code: e.code, message: e.message } };
    }
    try {
      msg.respond(new TextEncoder().encode(JSON.stringify(body)));
    } catch (err) {
      this.log.warn({ err: String(err) }, 'collector: answer not sent');
    }
  }

  private exportFirst(msg: Msg): ExportPage {
    const request = decodeExportRequest(msg.data);
    const result = exportDataset(this.records.records(), request.format, request.filters);
    this.pruneSnapshots();
    const snapshot = randomUUID();
    this.snapshots.set(snapshot, {
      lines: result.lines,
      counts: { ...result.counts },
      seqRange: result.seqRange,
      expires: Date.now() + SNAPSHOT_TTL_MS,
    });
    return {
      ...this.page(snapshot, 0),
      counts: { ...result.counts },
      seq_range: result.seqRange,
    };
  }

  private exportPage(msg: Msg): ExportPage {
    const request = decodePageRequest(msg.data);
    return this.page(request.snapshot, request.offset);
  }

  private page(id: string, offset: number): ExportPage {
    const snapshot = this.snapshots.get(id);
    if (snapshot === undefined) {
      throw new Error(
        `export snapshot ${id} is gone (older than ${SNAPSHOT_TTL_MS / 1000} s, or its collector restarted): export again`,
      );
    }
    snapshot.expires = Date.now() + SNAPSHOT_TTL_MS;
    const lines: string[] = [];
    let bytes = 0;
    for (let i = offset; i < snapshot.lines.length; i++) {
      const line = snapshot.lines[i]!;
      if (lines.length > 0 && bytes + line.length * 3 > EXPORT_PAGE_BYTES) break;
      lines.push(line);
      bytes += line.length * 3;
    }
    if (offset + lines.length >= snapshot.lines.length) this.snapshots.delete(id);
    return { collector: this.id, snapshot: id, total: snapshot.lines.length, offset, lines };
  }

  private pruneSnapshots(): void {
    const now = Date.now();
    for (const [id, s] of this.snapshots) if (s.expires < now) this.snapshots.delete(id);
    while (this.snapshots.size >= MAX_SNAPSHOTS) this.snapshots.delete(this.snapshots.keys().next().value!);
  }

  private async readLag(): Promise<void> {
    for (const [stream, consumer] of [
      [COMPLETIONS_STREAM, this.consumers[0]],
      [FEEDBACK_STREAM, this.consumers[1]],
    ] as const) {
      try {
        const lag = await consumer?.lag();
        if (lag !== undefined) this.metrics.lag.set({ stream }, lag.pending + lag.unacked);
      } catch {
        // JetStream unavailable: the gauge keeps its last value; the consumer recovers by itself.
      }
    }
  }

  private async shutdown(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'draining';
    clearInterval(this.lagTimer);
    this.driver?.stop();
    for (const sub of this.subs) sub.unsubscribe();
    // Finish the merges in hand (their acks go out), leave the rest to the group.
    await Promise.allSettled(this.consumers.map((c) => c.stop()));
    this.records.close();
    await this.metricsServer?.close();
    await this.nc.drain().catch(() => undefined);
    this.state = 'stopped';
    this.log.info({ state: heartbeatStateOf(this.state) }, 'collector stopped');
    this.resolveClosed();
  }
}
