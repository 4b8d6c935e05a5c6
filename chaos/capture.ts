/**
 * Reading what the capture path kept of a scenario, for the capture check (history/capture.ts):
 * the routers' drop counters watched while the load runs (a router SIGKILLed mid-run keeps its
 * last reading), then, once the load is over, the routers' buffers drained, the collector's
 * consumer idle and its records stable, every final event of the completions stream counted by
 * request id and every record of the records bucket. `--plant duplicate-event|drop-event`
 * corrupts the capture here, on the live cluster, before it is read.
 */
import { isLoadRequester } from './capture-requesters.ts';
import { captureKey } from '../src/cluster/messages/capture.ts';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { DEFAULT_CAPTURE_MAX_AGE_MS, DEFAULT_CAPTURE_MAX_BYTES } from '../src/capture/streams.ts';
import { connectNats } from '../src/cluster/connection.ts';
import {
  completionMsgId,
  decodeCompletionEvent,
  encodeCaptureRecord,
  type CompletionEvent,
} from '../src/cluster/messages/capture.ts';
import { COMPLETIONS_STREAM, RECORDS_BUCKET, completionSubject } from '../src/cluster/subjects.ts';
import { COLLECTOR_DURABLE } from '../src/collector/options.ts';
import type { CollectedRecord } from '../src/collector/record.ts';
import { RecordStore, recordKey } from '../src/collector/records.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { clusterRequestId } from './history/capture.ts';
import type { CapturedRecord, CaptureEvidence, History } from './history/types.ts';
import type { CapturePlantKind } from './plant.ts';
import { CAPTURE_PLANTS } from './plant.ts';
import { readSeries } from './router-metrics.ts';
import type { Topology } from './topology.ts';

/** How often the routers' capture counters are read while a scenario runs. */
const WATCH_INTERVAL_MS = 1_000;
/** How long the routers' buffers, then the collector, get to catch up once the load is over. */
export const CATCH_UP_TIMEOUT_MS = 60_000;
/** The records view counts as settled when it has not changed for this long. */
const SETTLED_MS = 1_500;
/** How often catch-up conditions are polled. */
const POLL_MS = 250;
/** How long reading the whole completions stream may take. */
const READ_STREAM_TIMEOUT_MS = 30_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The routers' `switchyard_capture_dropped_total{reason}` and `switchyard_capture_buffered_events`
 * read every second: the last reading of each router, with what earlier processes of a restarted
 * router counted before they died (a restart starts its counters at 0).
 */
export class CaptureWatch {
  /** Router id → reason → the current process's count. */
  private readonly current = new Map<string, Record<string, number>>();
  /** Router id → reason → what its earlier processes counted. */
  private readonly earlier = new Map<string, Record<string, number>>();
  /** Router id → events its buffer held at the last reading. */
  readonly buffered = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private polling: Promise<void> = Promise.resolve();

  private constructor(private readonly topology: Topology) {
    this.timer = setInterval(() => void this.poll(), WATCH_INTERVAL_MS);
  }

  /** Starts watching every router of `topology`. */
  static start(topology: Topology): CaptureWatch {
    return new CaptureWatch(topology);
  }

  /** Reads every router once (one reading at a time); a router that does not answer keeps its last. */
  poll(): Promise<void> {
    this.polling = this.polling.then(() => this.pollNow());
    return this.polling;
  }

  private async pollNow(): Promise<void> {
    await Promise.all(
      [...this.topology.routerMetrics].map(async ([id, url]) => {
        const series = await readSeries(url).catch(() => undefined);
        if (series === undefined) {
          this.buffered.delete(id);
          return;
        }
        const now: Record<string, number> = {};
        for (const s of series) {
          if (s.name === 'switchyard_capture_dropped_total' && s.labels['reason'] !== undefined)
            now[s.labels['reason']] = s.value;
          if (s.name === 'switchyard_capture_buffered_events') this.buffered.set(id, s.value);
        }
        const last = this.current.get(id) ?? {};
        // A count that went down is a new process: what the old one counted is kept.
        if (Object.entries(last).some(([reason, n]) => (now[reason] ?? 0) < n)) {
          const base = this.earlier.get(id) ?? {};
          for (const [reason, n] of Object.entries(last)) base[reason] = (base[reason] ?? 0) + n;
          this.earlier.set(id, base);
        }
        this.current.set(id, now);
      }),
    );
  }

  /** Drops by router and reason, over every process of each router. */
  drops(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const id of new Set([...this.current.keys(), ...this.earlier.keys()])) {
      const sum: Record<string, number> = { ...this.earlier.get(id) };
      for (const [reason, n] of Object.entries(this.current.get(id) ?? {}))
        sum[reason] = (sum[reason] ?? 0) + n;
      out[id] = sum;
    }
    return out;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** What the completions stream holds, by request id. */
interface StreamCounts {
  finalEvents: Record<string, number>;
  provisionalEvents: number;
  /** Messages that are no completion event (forged traffic of the hostile scenarios). */
  unreadable: number;
}

/** Every message of the completions stream, read with an ordered consumer up to its last sequence. */
async function readStream(nc: NatsConnection): Promise<StreamCounts> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(COMPLETIONS_STREAM);
  const counts: StreamCounts = { finalEvents: {}, provisionalEvents: 0, unreadable: 0 };
  const last = info.state.last_seq;
  if (info.state.messages === 0) return counts;
  const consumer = await jetstream(nc).consumers.get(COMPLETIONS_STREAM);
  const messages = await consumer.consume();
  const timer = setTimeout(() => void messages.close(), READ_STREAM_TIMEOUT_MS);
  let seen = 0;
  try {
    for await (const m of messages) {
      seen = m.seq;
      // An insecure cluster lets anyone publish here: what no router wrote is not an event.
      let event: CompletionEvent;
      try {
        event = decodeCompletionEvent(m.data);
      } catch {
        counts.unreadable++;
        if (m.seq >= last) break;
        continue;
      }
      // Another requester's request with a load request's id (hostile) is another request.
      if (!isLoadRequester(event.requester, event.request_id)) {
        if (m.seq >= last) break;
        continue;
      }
      if (event.final) counts.finalEvents[event.request_id] = (counts.finalEvents[event.request_id] ?? 0) + 1;
      else counts.provisionalEvents++;
      if (m.seq >= last) break;
    }
  } finally {
    clearTimeout(timer);
    await messages.close();
  }
  if (seen < last) throw new Error(`read the completions stream to sequence ${seen} of ${last} in time`);
  return counts;
}

/** The record as the check compares it. */
function captured(record: CollectedRecord): CapturedRecord {
  const c = record.completion;
  return {
    requestId: record.request_id,
    completion: c === undefined ? 'none' : c.final ? 'final' : 'provisional',
    ...(c?.finish_reason === undefined ? {} : { finishReason: c.finish_reason }),
    ...(c === undefined ? {} : { completionTokens: c.completion_tokens }),
    ...(c?.error === undefined ? {} : { code: c.error.code }),
  };
}

/** The records of the load clients' and bridges' requests, by request id. */
function loadRecords(store: RecordStore): Map<string, CollectedRecord> {
  const out = new Map<string, CollectedRecord>();
  for (const r of store.records()) if (isLoadRequester(r.requester, r.request_id)) out.set(r.request_id, r);
  return out;
}

/** Polls `done` until it holds or `timeoutMs` passes; resolves with whether it held, and when. */
async function until(done: () => Promise<boolean> | boolean, timeoutMs: number): Promise<number | undefined> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await done()) return Date.now() - start;
    await sleep(POLL_MS);
  }
  return undefined;
}

/**
 * Waits for the capture to catch up and reads it: the routers' buffers empty (every live router
 * answering with 0 buffered events), the collector's durable consumer with nothing pending or
 * unacked, and its records view settled with a record for every final event. Plants `plant`
 * first when asked. Throws only when NATS cannot be read at all.
 */
export async function readCapture(
  topology: Topology,
  watch: CaptureWatch,
  history: History,
  plant?: CapturePlantKind,
): Promise<CaptureEvidence> {
  const notes: string[] = [];
  let caughtUp = true;
  const live = (): string[] =>
    [...topology.routerMetrics.keys()].filter((id) => {
      const router = topology.routers.find((r) => r.id === id);
      return router !== undefined && router.child.exitCode === null && router.child.signalCode === null;
    });
  const drained = await until(async () => {
    await watch.poll();
    return live().every((id) => watch.buffered.get(id) === 0);
  }, CATCH_UP_TIMEOUT_MS);
  if (drained === undefined) {
    caughtUp = false;
    notes.push(`router buffers not empty after ${CATCH_UP_TIMEOUT_MS / 1000} s`);
  } else notes.push(`router buffers empty after ${(drained / 1000).toFixed(1)} s`);
  watch.stop();

  const nc = await connectNats({ servers: topology.natsUrls, nkeySeedFile: topology.operator.seedFile });
  const store = await RecordStore.open(
    nc,
    {
      replicas: topology.captureReplicas,
      maxAgeMs: DEFAULT_CAPTURE_MAX_AGE_MS,
      maxBytes: DEFAULT_CAPTURE_MAX_BYTES,
    },
    createLogger({ role: 'chaos', id: 'capture-check', level: 'silent' }),
  );
  try {
    const jsm = await jetstreamManager(nc);
    const idle = async (): Promise<boolean> => {
      const info = await jsm.consumers.info(COMPLETIONS_STREAM, COLLECTOR_DURABLE).catch(() => undefined);
      return info !== undefined && info.num_pending === 0 && info.num_ack_pending === 0;
    };
    const consumed = await until(idle, CATCH_UP_TIMEOUT_MS);
    if (consumed === undefined) {
      caughtUp = false;
      notes.push(`the collector's consumer still had messages after ${CATCH_UP_TIMEOUT_MS / 1000} s`);
    } else notes.push(`consumer idle after ${(consumed / 1000).toFixed(1)} s`);

    let stream = await readStream(nc);
    let planted: CaptureEvidence['planted'];
    if (plant !== undefined) {
      planted = await plantCapture(plant, nc, store, history);
      if (plant === 'duplicate-event') {
        if ((await until(idle, CATCH_UP_TIMEOUT_MS)) === undefined) caughtUp = false;
        stream = await readStream(nc);
      }
    }
    // The view follows the bucket by a watch: wait for a record of every final event, and calm.
    let size = -1;
    let since = Date.now();
    const settled = await until(() => {
      if (store.size !== size) {
        size = store.size;
        since = Date.now();
      }
      const records = loadRecords(store);
      const complete = Object.keys(stream.finalEvents).every(
        (id) => records.get(id)?.completion?.final === true || id === planted?.requestId,
      );
      return complete && Date.now() - since >= SETTLED_MS;
    }, CATCH_UP_TIMEOUT_MS);
    if (settled === undefined) {
      caughtUp = false;
      notes.push('the records view never held a record of every final event');
    }
    if (stream.unreadable > 0) notes.push(`${stream.unreadable} unreadable message(s) in the stream`);
    return {
      finalEvents: stream.finalEvents,
      provisionalEvents: stream.provisionalEvents,
      records: [...store.records()].filter((r) => isLoadRequester(r.requester, r.request_id)).map(captured),
      drops: watch.drops(),
      caughtUp,
      detail: notes.join('; '),
      ...(planted === undefined ? {} : { planted }),
    };
  } finally {
    store.close();
    await nc.close();
  }
}

/**
 * The capture self-test: `duplicate-event` publishes a second final event of one completed
 * request under another message id (JetStream's duplicate window cannot hide it); `drop-event`
 * deletes one request's record from the bucket. Either must fail the capture check.
 */
async function plantCapture(
  kind: CapturePlantKind,
  nc: NatsConnection,
  store: RecordStore,
  history: History,
): Promise<NonNullable<CaptureEvidence['planted']>> {
  const records = loadRecords(store);
  const target = history.operations.find(
    (op) => op.outcome.kind === 'ok' && records.get(clusterRequestId(op))?.completion?.final === true,
  );
  if (target === undefined) throw new Error(`--plant ${kind}: no completed request has a final record`);
  const requestId = clusterRequestId(target);
  const record = records.get(requestId)!;
  const event: CompletionEvent = record.completion!;
  if (kind === 'duplicate-event') {
    await jetstream(nc).publish(completionSubject(event.model), encodeCaptureRecord(event), {
      msgID: `${completionMsgId(event)}#planted`,
    });
  } else {
    const kv = await new Kvm(nc).open(RECORDS_BUCKET);
    await kv.delete(recordKey(captureKey(requestId, record.requester)));
    await until(() => loadRecords(store).get(requestId) === undefined, CATCH_UP_TIMEOUT_MS);
  }
  return { kind, requestId, operation: target.id, expected: CAPTURE_PLANTS[kind] };
}
