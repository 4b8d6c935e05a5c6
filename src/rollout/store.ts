/**
 * The rollouts bucket ({@link ROLLOUTS_BUCKET}): one key per model id holding its current or last
 * rollout. Every write is a compare-and-set on the key's revision, so an operator's command and
 * a collector's decision never overwrite each other, and of several collectors looking at once
 * exactly one records each decision (the others read the winner's record and look again later).
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { JetStreamApiCodes, JetStreamApiError, jetstream } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { ROLLOUTS_BUCKET, assertId } from '../cluster/subjects.ts';
import { ModelNotFoundError, RegistryError } from '../errors/errors.ts';
import { decodeRolloutRecord, encodeRolloutRecord } from './record.ts';
import type { RolloutRecord } from './types.ts';
import { whileJetStreamForms } from '../cluster/jetstream-forming.ts';

/** How long one JetStream call of the store may take. */
export const DEFAULT_ROLLOUT_TIMEOUT_MS = 10_000;
/** Values kept per model: the model's last rollouts. */
export const ROLLOUT_HISTORY = 16;

/** A record and the revision a compare-and-set needs. */
export interface StoredRollout {
  record: RolloutRecord;
  revision: number;
}

/** A running watch of the bucket. */
export interface RolloutWatch {
  stop(): void;
}

/** Whether a KV update lost its compare-and-set (someone wrote the key first). */
export function isWrongRevision(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || /wrong last sequence/i.test(err.message))
  );
}

export class RolloutStore {
  private constructor(private readonly kv: KV) {}

  /** Opens the bucket; with `create`, creates it where missing (operators, collectors). */
  static async open(
    nc: NatsConnection,
    opts: { create: boolean; timeoutMs?: number },
  ): Promise<RolloutStore> {
    const kvm = new Kvm(jetstream(nc, { timeout: opts.timeoutMs ?? DEFAULT_ROLLOUT_TIMEOUT_MS }));
    try {
      const kv = opts.create
        ? await whileJetStreamForms(() =>
            kvm.create(ROLLOUTS_BUCKET, { history: ROLLOUT_HISTORY, storage: 'file' }),
          )
        : await kvm.open(ROLLOUTS_BUCKET);
      if (!opts.create) await kv.status(); // open() does not check that the bucket exists
      return new RolloutStore(kv);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
        throw new ModelNotFoundError(
          `no rollout was ever started on this cluster (bucket ${ROLLOUTS_BUCKET} is missing)`,
          { cause: err },
        );
      }
      throw new RegistryError(
        'unreachable',
        `cannot open the rollouts bucket ${ROLLOUTS_BUCKET}: ${err instanceof Error ? err.message : String(err)} ` +
          '(rollouts need JetStream on the NATS server)',
        { cause: err },
      );
    }
  }

  /** The model's current or last rollout. */
  async get(model: string): Promise<StoredRollout | undefined> {
    assertId('model id', model);
    return storedOf(await this.kv.get(model));
  }

  /** Every model's current or last rollout, by model id. */
  async list(): Promise<StoredRollout[]> {
    const out: StoredRollout[] = [];
    for await (const key of await this.kv.keys()) {
      const stored = await this.get(key).catch(() => undefined);
      if (stored !== undefined) out.push(stored);
    }
    return out.sort((a, b) => a.record.model.localeCompare(b.record.model));
  }

  /**
   * Writes `record` if the key is still at `revision` (0: the key must not exist); returns the
   * new revision. Throws what {@link isWrongRevision} recognises when someone wrote first.
   */
  async put(record: RolloutRecord, revision: number): Promise<number> {
    assertId('model id', record.model);
    const value = encodeRolloutRecord(record);
    return revision === 0
      ? this.kv.create(record.model, value)
      : this.kv.update(record.model, value, revision);
  }

  /**
   * Calls `onRecord` with every model's record now and after each write (a watch, not a poll);
   * `onError` when an entry does not decode or the watch ends without stop().
   */
  async watch(
    onRecord: (stored: StoredRollout) => void,
    onError: (err: unknown) => void,
  ): Promise<RolloutWatch> {
    const watch = await this.kv.watch({ key: '>' });
    let stopped = false;
    void (async () => {
      for await (const entry of watch) {
        try {
          const stored = storedOf(entry);
          if (stored !== undefined) onRecord(stored);
        } catch (err) {
          onError(err);
        }
      }
      if (!stopped) onError(new Error(`the watch of ${ROLLOUTS_BUCKET} ended`));
    })().catch((err: unknown) => onError(err));
    return {
      stop: () => {
        stopped = true;
        watch.stop();
      },
    };
  }
}

function storedOf(entry: KvEntry | null): StoredRollout | undefined {
  if (entry === null || entry.operation !== 'PUT') return undefined;
  return { record: decodeRolloutRecord(entry.value, `rollout ${entry.key}`), revision: entry.revision };
}
