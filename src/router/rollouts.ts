/**
 * A router's view of the rollouts: a KV watch of every key of {@link ROLLOUTS_BUCKET} (read
 * only; the router's permissions allow nothing else), kept as model → {@link RoutingView}. A
 * weight change reaches every router as one watch message, never by polling.
 *
 * The bucket may not exist when a router starts (the collector and `rollout start` create it),
 * and a watch ends when its connection or JetStream goes away: either way the router watches
 * again every {@link ROLLOUT_WATCH_RETRY_MS}, and says so once until a watch runs again. A watch
 * that starts over delivers every key's last value first, deletes included (KV keeps a delete or
 * purge marker as the key's last value), so nothing missed meanwhile is lost.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KvWatchEntry } from '@nats-io/kv';
import { ROLLOUTS_BUCKET } from '../cluster/subjects.ts';
import { decodeRoutingView, type RoutingView } from '../rollout/record.ts';
import type { Logger } from '../telemetry/logger.ts';

/** How long a router waits before it watches the rollouts again after a watch failed or ended. */
export const ROLLOUT_WATCH_RETRY_MS = 2_000;
/** How long one JetStream API call of the watch may take. */
const ROLLOUT_WATCH_TIMEOUT_MS = 5_000;

/** One model's rollout as this router applies it, with the KV revision it came from. */
export interface AppliedRollout extends RoutingView {
  revision: number;
}

/** What the watch tells its router. */
export interface RolloutWatchOptions {
  nc: NatsConnection;
  log: Pick<Logger, 'info' | 'warn'>;
  /** A model's rollout changed (undefined: it has none any more); `revision` is the KV revision. */
  onChange(model: string, rollout: AppliedRollout | undefined, revision: number): void;
  /** @default ROLLOUT_WATCH_RETRY_MS */
  retryMs?: number;
}

/** A running watch; `stop()` ends it for good. */
export interface RolloutWatch {
  stop(): void;
}

/** Starts watching the rollouts bucket (in the background: it never throws). */
export function watchRollouts(opts: RolloutWatchOptions): RolloutWatch {
  const retryMs = opts.retryMs ?? ROLLOUT_WATCH_RETRY_MS;
  const known = new Set<string>();
  let stopped = false;
  let current: { stop(): void } | undefined;
  let retry: NodeJS.Timeout | undefined;
  /** Set while a problem was logged and no watch ran since: one line per outage, not per retry. */
  let complained = false;
  /** Whether a watch ever ran. */
  let watched = false;

  const again = (why: unknown): void => {
    current?.stop();
    current = undefined;
    if (stopped) return;
    if (!complained) {
      complained = true;
      // Before any watch ran, a missing bucket is the normal state of a cluster that has had no
      // rollout (or runs without JetStream): said once, not as a warning. A watch lost is one.
      opts.log[watched ? 'warn' : 'info'](
        { err: why instanceof Error ? why.message : String(why), retryMs },
        watched
          ? `the rollouts watch (${ROLLOUTS_BUCKET}) ended; splitting by the last weights seen, retrying`
          : `cannot watch rollouts (${ROLLOUTS_BUCKET}) yet; no split until it can, retrying`,
      );
    }
    clearTimeout(retry);
    retry = setTimeout(() => void start(), retryMs).unref();
  };

  const apply = (entry: KvWatchEntry): void => {
    const model = entry.key;
    if (entry.operation !== 'PUT') {
      if (known.delete(model)) opts.onChange(model, undefined, entry.revision);
      return;
    }
    let view: RoutingView | undefined;
    try {
      view = decodeRoutingView(entry.value, `${ROLLOUTS_BUCKET} ${model}`);
      if (view.model !== model) throw new Error(`the record of key ${model} names model ${view.model}`);
    } catch (err) {
      // A record this router cannot read splits nothing: unpinned traffic goes where it would
      // without a rollout, which is the safe side of a canary.
      opts.log.warn({ err: (err as Error).message, model }, 'invalid rollout record: no split for the model');
      view = undefined;
    }
    if (view === undefined) {
      if (known.delete(model)) opts.onChange(model, undefined, entry.revision);
      return;
    }
    known.add(model);
    opts.onChange(model, { ...view, revision: entry.revision }, entry.revision);
  };

  const start = async (): Promise<void> => {
    if (stopped) return;
    try {
      const js = jetstream(opts.nc, { timeout: ROLLOUT_WATCH_TIMEOUT_MS });
      const kv = await new Kvm(js).open(ROLLOUTS_BUCKET);
      const watch = await kv.watch({ key: '>' });
      if (stopped) return watch.stop();
      current = watch;
      watched = true;
      if (complained) opts.log.info({}, `watching rollouts (${ROLLOUTS_BUCKET}) again`);
      complained = false;
      void (async () => {
        for await (const entry of watch) {
          apply(entry);
        }
        if (!stopped && current === watch) again(new Error('the rollouts watch ended'));
      })().catch((err: unknown) => again(err));
    } catch (err) {
      again(err);
    }
  };

  void start();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(retry);
      current?.stop();
      current = undefined;
    },
  };
}
