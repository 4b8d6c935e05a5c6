/**
 * A replica's heartbeats as an operator sees them: the scenarios that fault an engine (stall,
 * failing steps, CPU starvation) verify from them that the fault took (its steps stopped, or kept
 * moving), and hot-swap that every replica serves the new version and released the old one,
 * without trusting the replica's own answer alone.
 */
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { decodeReplicaHeartbeat } from '../src/cluster/messages/heartbeat.ts';
import { replicaHeartbeatSubject } from '../src/cluster/subjects.ts';

/** What one heartbeat said, stamped with when the watcher received it. */
export interface Beat {
  /** Epoch ms the watcher received it. */
  at: number;
  /** The replica's clock when it sent it (gaps here mean the replica's own loop was late). */
  sentAt: number;
  progress: number;
  activeSequences: number;
  queueDepth: number;
  state: string;
  /** The version new requests get (hot swap: the new one once it took over). */
  modelVersion: string;
  /** Versions retired by a swap and still loaded (finishing their requests); empty once released. */
  retiringVersions: string[];
  /** The version a swap is loading, while it runs. */
  swappingTo?: string;
  /** Why the last swap failed. */
  swapError?: string;
}

/** Records every heartbeat of one replica until closed. */
export class HeartbeatWatch {
  readonly beats: Beat[] = [];
  /** Heartbeats that did not decode (counted: a replica under fault must still send valid ones). */
  malformed = 0;
  private readonly sub: Subscription;

  constructor(
    nc: NatsConnection,
    readonly replicaId: string,
  ) {
    this.sub = nc.subscribe(replicaHeartbeatSubject(replicaId), {
      callback: (err, msg) => {
        if (err) return;
        try {
          const hb = decodeReplicaHeartbeat(msg.data);
          this.beats.push({
            at: Date.now(),
            sentAt: hb.sentAt,
            progress: hb.progress,
            activeSequences: hb.activeSequences,
            queueDepth: hb.queueDepth,
            state: hb.state,
            modelVersion: hb.modelVersion,
            retiringVersions: hb.retiringVersions ?? [],
            ...(hb.swappingTo === undefined ? {} : { swappingTo: hb.swappingTo }),
            ...(hb.swapError === undefined ? {} : { swapError: hb.swapError }),
          });
        } catch {
          this.malformed++;
        }
      },
    });
  }

  /** The beats received in [from, to] (epoch ms). */
  between(from: number, to: number): Beat[] {
    return this.beats.filter((b) => b.at >= from && b.at <= to);
  }

  /** How far the engine's step counter moved over the beats received in [from, to]. */
  progressBetween(from: number, to: number): number {
    const beats = this.between(from, to);
    if (beats.length < 2) return 0;
    return beats[beats.length - 1]!.progress - beats[0]!.progress;
  }

  /**
   * The longest gap (ms) between consecutive beats received in [from, to], by arrival or, with
   * `sent`, by the replica's send times (a late sender rather than a slow path).
   */
  longestSilence(from: number, to: number, sent = false): number {
    const beats = this.between(from, to);
    const t = (b: Beat): number => (sent ? b.sentAt : b.at);
    let longest = 0;
    for (let i = 1; i < beats.length; i++) longest = Math.max(longest, t(beats[i]!) - t(beats[i - 1]!));
    return longest;
  }

  /** Gaps (ms) between consecutive beats received in [from, to] longer than `ms`, by send time. */
  gapsOver(from: number, to: number, ms: number): number[] {
    const beats = this.between(from, to);
    const gaps: number[] = [];
    for (let i = 1; i < beats.length; i++) {
      const gap = beats[i]!.sentAt - beats[i - 1]!.sentAt;
      if (gap > ms) gaps.push(gap);
    }
    return gaps;
  }

  /** The last beat received, if any. */
  get last(): Beat | undefined {
    return this.beats[this.beats.length - 1];
  }

  close(): void {
    this.sub.unsubscribe();
  }
}
