/**
 * Which running replicas serve a version, learned from their heartbeats: nothing keeps a list of
 * replicas, so `models rm` listens on {@link ALL_REPLICA_HEARTBEATS} long enough for every live
 * replica to beat twice (two of the longest interval any of them announces, at least
 * {@link MIN_SERVING_WINDOW_MS}). A heartbeat counts only when its subject names its body's id.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { decodeReplicaHeartbeat } from '../cluster/messages/heartbeat.ts';
import { ALL_REPLICA_HEARTBEATS, heartbeatSubjectId } from '../cluster/subjects.ts';

/** Shortest listening window: a replica at the default interval beats several times in it. */
export const MIN_SERVING_WINDOW_MS = 1_000;
/** Heartbeat intervals to wait: one beat may be lost or in flight. */
export const SERVING_WINDOW_INTERVALS = 2;

/** The ids of the replicas whose heartbeats say they serve `id@version` (sorted). */
export async function replicasServing(nc: NatsConnection, id: string, version: string): Promise<string[]> {
  const serving = new Set<string>();
  const started = Date.now();
  let windowMs = MIN_SERVING_WINDOW_MS;
  let wake: () => void = () => undefined;
  const sub = nc.subscribe(ALL_REPLICA_HEARTBEATS, {
    callback: (err, msg) => {
      if (err !== null) return;
      const named = heartbeatSubjectId(msg.subject);
      let hb;
      try {
        hb = decodeReplicaHeartbeat(msg.data);
      } catch {
        return; // not a heartbeat this version understands: it cannot claim a version either
      }
      if (named?.id !== hb.id) return;
      windowMs = Math.max(windowMs, SERVING_WINDOW_INTERVALS * hb.intervalMs);
      // The version new requests get, or one still finishing its requests after a hot swap.
      const has = hb.modelVersion === version || (hb.retiringVersions?.includes(version) ?? false);
      if (hb.model === id && has && hb.state !== 'stopped') serving.add(hb.id);
      else serving.delete(hb.id);
      wake();
    },
  });
  try {
    // Wait out the window, which a heartbeat with a longer interval may stretch while it runs.
    while (Date.now() - started < windowMs) {
      const left = windowMs - (Date.now() - started);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    sub.unsubscribe();
  }
  return [...serving].sort();
}
