/**
 * The records bucket (JetStream KV, one key per request id) and every collector's view of it.
 * A merge reads the record, applies one stream message (record.ts) and writes it back with
 * compare-and-set on the revision, so collectors sharing the consumers can merge the
 * completion and the feedback of one request at the same time without losing either. The view
 * is a watch of the whole bucket: every collector sees every record, whoever wrote it, and
 * answers stats and exports from it.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { Kvm, type KV } from '@nats-io/kv';
import { RECORDS_BUCKET } from '../cluster/subjects.ts';
import { captureKey } from '../cluster/messages/capture.ts';
import type { CollectedRecord } from './record.ts';
import type { Logger } from '../telemetry/logger.ts';
import { whileJetStreamForms } from '../cluster/jetstream-forming.ts';

/** Compare-and-set retries of one merge before it gives up (and the message is redelivered). */
const MAX_MERGE_RETRIES = 16;

/**
 * The bucket key of a record's capture key (captureKey: the request id, with the requester for a
 * NATS client's request): base64url, since KV keys take neither `:` nor every id character.
 */
export function recordKey(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

interface Held {
  record: CollectedRecord;
  revision: number;
}

/** How the records bucket is made. */
export interface RecordsOptions {
  replicas: number;
  maxAgeMs: number;
  maxBytes: number;
  storage?: 'file' | 'memory';
}

/** The outcome of one merge. */
export type MergeResult = 'changed' | 'unchanged';

/** The records bucket with a live, complete view. */
export class RecordStore {
  private readonly view = new Map<string, Held>();
  /** Per-key merge chains: merges of one key in this process run one after the other. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private stopWatch: (() => void) | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly log: Logger,
  ) {}

  /** Opens (or creates) the bucket and resolves once the view holds every record already stored. */
  static async open(nc: NatsConnection, opts: RecordsOptions, log: Logger): Promise<RecordStore> {
    const kv = await whileJetStreamForms(() =>
      new Kvm(nc).create(RECORDS_BUCKET, {
        history: 1,
        replicas: opts.replicas,
        ttl: opts.maxAgeMs,
        max_bytes: opts.maxBytes,
        storage: opts.storage ?? 'file',
      }),
    );
    const store = new RecordStore(kv, log);
    await store.watch();
    return store;
  }

  /** Every record in the view. */
  records(): IterableIterator<CollectedRecord> {
    const it = this.view.values();
    return (function* () {
      for (const held of it) yield held.record;
    })();
  }

  /** How many records the view holds. */
  get size(): number {
    return this.view.size;
  }

  /** One record from the view, by request id (and requester, for a NATS client's request). */
  get(requestId: string, requester?: string): CollectedRecord | undefined {
    return this.view.get(recordKey(captureKey(requestId, requester)))?.record;
  }

  /**
   * Applies `merge` to the stored record under `captureKey` (see captureKey) and writes the
   * result, retrying on a concurrent write. `merge` must return its argument unchanged when it
   * changes nothing.
   */
  merge(
    captureKey: string,
    merge: (record: CollectedRecord | undefined) => CollectedRecord,
  ): Promise<MergeResult> {
    const key = recordKey(captureKey);
    const previous = this.chains.get(key) ?? Promise.resolve();
    const run = previous.then(() => this.mergeNow(key, merge));
    const settled = run.catch(() => undefined);
    this.chains.set(key, settled);
    void settled.then(() => {
      if (this.chains.get(key) === settled) this.chains.delete(key);
    });
    return run;
  }

  private async mergeNow(
    key: string,
    merge: (record: CollectedRecord | undefined) => CollectedRecord,
  ): Promise<MergeResult> {
    let held = this.view.get(key);
    for (let tries = 0; ; tries++) {
      const next = merge(held?.record);
      if (held !== undefined && next === held.record) return 'unchanged';
      const data = new TextEncoder().encode(JSON.stringify(next));
      try {
        const revision =
          held === undefined
            ? await this.kv.create(key, data)
            : await this.kv.update(key, data, held.revision);
        this.hold(key, { record: next, revision });
        return 'changed';
      } catch (err) {
        if (tries >= MAX_MERGE_RETRIES) throw err;
        // Someone wrote first (another collector, or the view lagged): merge into what is stored.
        const entry = await this.kv.get(key);
        held =
          entry === null || entry.operation !== 'PUT'
            ? undefined
            : { record: entry.json<CollectedRecord>(), revision: entry.revision };
        if (held !== undefined) this.hold(key, held);
      }
    }
  }

  private hold(key: string, held: Held): void {
    const current = this.view.get(key);
    if (current === undefined || current.revision < held.revision) this.view.set(key, held);
  }

  private async watch(): Promise<void> {
    const status = await this.kv.status();
    const iter = await this.kv.watch({ key: '>' });
    this.stopWatch = () => iter.stop();
    let resolveReady!: () => void;
    const ready = new Promise<void>((resolve) => (resolveReady = resolve));
    if (status.values === 0) resolveReady();
    void (async () => {
      for await (const entry of iter) {
        if (entry.operation === 'PUT') {
          // Our own writes come back too: the view has them already, at this revision or later.
          const held = this.view.get(entry.key);
          if (held !== undefined && held.revision >= entry.revision) {
            if (entry.isUpdate || (entry.delta ?? 0) === 0) resolveReady();
            continue;
          }
          try {
            this.hold(entry.key, { record: entry.json<CollectedRecord>(), revision: entry.revision });
          } catch (err) {
            this.log.warn({ key: entry.key, err: String(err) }, 'collector: unreadable record skipped');
          }
        } else {
          this.view.delete(entry.key);
        }
        if (!entry.isUpdate && (entry.delta ?? 0) === 0) resolveReady();
        if (entry.isUpdate) resolveReady();
      }
    })();
    await ready;
  }

  /** Stops the watch. */
  close(): void {
    this.stopWatch?.();
  }
}
