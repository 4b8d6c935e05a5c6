/**
 * The replicas a rollout driver can see: one entry per replica from its heartbeats (nothing
 * else lists replicas), alive while it beat within three of its own intervals. A heartbeat
 * counts only when its subject names its body's id, as everywhere else.
 */
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { decodeReplicaHeartbeat, type ReplicaHeartbeat } from '../cluster/messages/heartbeat.ts';
import { ALL_REPLICA_HEARTBEATS, heartbeatSubjectId } from '../cluster/subjects.ts';

/** Missed intervals after which a replica no longer counts. */
const ALIVE_INTERVALS = 3;

export interface SeenReplica {
  hb: ReplicaHeartbeat;
  seenAt: number;
}

export class ReplicaView {
  private readonly seen = new Map<string, SeenReplica>();
  private sub: Subscription | undefined;

  start(nc: NatsConnection): void {
    this.sub = nc.subscribe(ALL_REPLICA_HEARTBEATS, {
      callback: (err, msg) => {
        if (err !== null) return;
        try {
          const hb = decodeReplicaHeartbeat(msg.data);
          if (heartbeatSubjectId(msg.subject)?.id !== hb.id) return;
          if (hb.state === 'stopped') this.seen.delete(hb.id);
          else this.seen.set(hb.id, { hb, seenAt: Date.now() });
        } catch {
          // Not a heartbeat this version reads: it cannot claim a version either.
        }
      },
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
  }

  /** The live, ready replicas of `model`, sorted by id. */
  serving(model: string, now = Date.now()): ReplicaHeartbeat[] {
    const out: ReplicaHeartbeat[] = [];
    for (const [id, { hb, seenAt }] of this.seen) {
      if (now - seenAt > ALIVE_INTERVALS * hb.intervalMs) {
        this.seen.delete(id);
        continue;
      }
      if (hb.model === model && hb.state === 'ready') out.push(hb);
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** A live replica's last heartbeat. */
  get(id: string, now = Date.now()): ReplicaHeartbeat | undefined {
    const s = this.seen.get(id);
    return s !== undefined && now - s.seenAt <= ALIVE_INTERVALS * s.hb.intervalMs ? s.hb : undefined;
  }
}
