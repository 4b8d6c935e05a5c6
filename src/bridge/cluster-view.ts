/**
 * What the bridge knows about the cluster, from replica heartbeats alone (soft state: rebuilt in
 * one heartbeat interval after a restart). It answers `/v1/models`, `/readyz` and `/v1/cluster`,
 * and tells the response cache which model version a request will get. It never routes: the
 * routers own placement, and their answer (busy, unavailable, model_not_found) is what counts.
 * The shared heartbeat rules (subject must match body, bounded table, late sweeps skipped) are
 * the {@link HeartbeatMonitor}'s, the stuck rule `engine-progress.ts`'s.
 */
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { firstMark, isStuck, noteProgress, type ProgressMark } from '../cluster/engine-progress.ts';
import {
  HeartbeatMonitor,
  MAX_KNOWN_MODELS,
  newPeer,
  type Peer,
  afterPendingIo,
} from '../cluster/heartbeat-monitor.ts';
import {
  decodeReplicaHeartbeat,
  type HeartbeatState,
  type ReplicaHeartbeat,
} from '../cluster/messages/heartbeat.ts';
import { ALL_REPLICA_HEARTBEATS } from '../cluster/subjects.ts';
import type { Logger } from '../telemetry/logger.ts';

/**
 * Heartbeat intervals of silence after which a replica is dropped from the view: the routers
 * declare it dead after 3 (DEFAULT_DEAD_AFTER_MISSED), and the view should not list a replica
 * longer than they route to it.
 */
export const VIEW_DROP_AFTER_MISSED = 3;
/** A replica with work whose engine progress stood still this long is shown as stuck (not live). */
export const VIEW_STUCK_TIMEOUT_MS = 1_500;
/** How often silent replicas are swept out (and stuck ones re-evaluated). */
export const VIEW_SWEEP_INTERVAL_MS = 250;

/** One replica as `/v1/cluster` shows it. */
export interface ReplicaView {
  id: string;
  model: string;
  version: string;
  device: string;
  state: HeartbeatState;
  /** Ready, heard from recently and making progress: it can serve. */
  live: boolean;
  /** Busy while its engine progress stood still past the stuck timeout. */
  stuck: boolean;
  activeSequences: number;
  queueDepth: number;
  maxBatchSize: number;
  maxQueue: number;
  freeTokenBudget: number;
  tokenBudget: number;
  /** Local epoch ms of the latest heartbeat. */
  lastSeen: number;
  /** Digest of the version it serves (absent from older replicas). */
  digest?: string;
  /** Versions still finishing their requests after a hot swap. */
  retiringVersions: string[];
  /** The version a swap in progress loads. */
  swappingTo?: string;
  /** Why its last swap failed. */
  swapError?: string;
}

/** A model some live replica serves. */
export interface ModelView {
  id: string;
  /** Versions served by live replicas, sorted. */
  versions: string[];
  /** Live replicas serving it. */
  replicas: number;
  /** Epoch ms this bridge first heard of the model. */
  firstSeen: number;
}

interface Entry extends Peer, ProgressMark {
  hb: ReplicaHeartbeat;
}

/** Options of a {@link ClusterView}; the defaults suit production. */
export interface ClusterViewOptions {
  dropAfterMissed?: number;
  stuckTimeoutMs?: number;
  sweepIntervalMs?: number;
  log?: Logger;
}

/** The bridge's picture of the replicas. */
export class ClusterView {
  private readonly entries: HeartbeatMonitor<ReplicaHeartbeat, Entry>;
  /** When each model was first heard of; at most MAX_KNOWN_MODELS names. */
  private readonly firstSeen = new Map<string, number>();
  private readonly dropAfterMissed: number;
  private readonly stuckTimeoutMs: number;
  private readonly sweepIntervalMs: number;
  private sub: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: ClusterViewOptions = {}) {
    this.dropAfterMissed = opts.dropAfterMissed ?? VIEW_DROP_AFTER_MISSED;
    this.stuckTimeoutMs = opts.stuckTimeoutMs ?? VIEW_STUCK_TIMEOUT_MS;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? VIEW_SWEEP_INTERVAL_MS;
    this.entries = new HeartbeatMonitor({
      role: 'replica',
      decode: decodeReplicaHeartbeat,
      tickMs: this.sweepIntervalMs,
      ...(opts.log ? { log: opts.log } : {}),
    });
  }

  /** Starts listening to replica heartbeats on `nc`. */
  start(nc: NatsConnection): void {
    this.sub = nc.subscribe(ALL_REPLICA_HEARTBEATS, {
      callback: (err, msg) => {
        if (err === null) this.receive(msg.subject, msg.data, Date.now());
      },
    });
    this.timer = setInterval(
      () => afterPendingIo(() => this.sweep(Date.now())),
      this.sweepIntervalMs,
    ).unref();
  }

  /** Records a heartbeat message received at `now`, if its subject names its sender. */
  receive(subject: string, data: Uint8Array, now: number): void {
    const hb = this.entries.accept(subject, data);
    if (hb !== undefined) this.observe(hb, now);
  }

  /** Records an accepted heartbeat received at `now`. A `stopped` replica leaves the view at once. */
  observe(hb: ReplicaHeartbeat, now: number): void {
    if (hb.state === 'stopped') {
      this.entries.delete(hb.id);
      return;
    }
    const tracked = this.entries.track(hb.id, () => ({ ...newPeer(hb.id, now), ...firstMark(hb, now), hb }));
    if (tracked === undefined) return;
    const { peer: entry, fresh } = tracked;
    this.entries.heard(entry, hb, now);
    if (!fresh) noteProgress(entry, entry.hb, hb, now);
    entry.hb = hb;
    if (!this.firstSeen.has(hb.model) && this.firstSeen.size < MAX_KNOWN_MODELS)
      this.firstSeen.set(hb.model, now);
  }

  /**
   * Drops replicas silent for more than `dropAfterMissed` of their own intervals. A sweep that
   * ran late (this process stalled) drops nothing: the beats queued meanwhile are read first.
   */
  sweep(now: number): void {
    if (!this.entries.tick(now)) return;
    for (const e of [...this.entries.peers()]) {
      if (this.entries.silent(e, now, this.dropAfterMissed)) this.entries.delete(e.id);
    }
  }

  /** Every replica in the view, sorted by id. */
  replicas(now = Date.now()): ReplicaView[] {
    return [...this.entries.peers()]
      .sort((a, b) => (a.hb.id < b.hb.id ? -1 : 1))
      .map((e) => {
        const { hb } = e;
        const stuck = isStuck(e, hb, now, this.stuckTimeoutMs, e.lastSeen);
        return {
          id: hb.id,
          model: hb.model,
          version: hb.modelVersion,
          device: hb.device,
          state: hb.state,
          live: hb.state === 'ready' && !stuck && now - e.lastSeen <= this.dropAfterMissed * hb.intervalMs,
          stuck,
          activeSequences: hb.activeSequences,
          queueDepth: hb.queueDepth,
          maxBatchSize: hb.maxBatchSize,
          maxQueue: hb.maxQueue,
          freeTokenBudget: hb.freeTokenBudget,
          tokenBudget: hb.tokenBudget,
          lastSeen: e.lastSeen,
          retiringVersions: hb.retiringVersions ?? [],
          ...(hb.modelDigest !== undefined ? { digest: hb.modelDigest } : {}),
          ...(hb.swappingTo !== undefined ? { swappingTo: hb.swappingTo } : {}),
          ...(hb.swapError !== undefined ? { swapError: hb.swapError } : {}),
        };
      });
  }

  /** Models with at least one live replica, sorted by id. */
  models(now = Date.now()): ModelView[] {
    const byModel = new Map<string, { versions: Set<string>; replicas: number }>();
    for (const r of this.replicas(now)) {
      if (!r.live) continue;
      const m = byModel.get(r.model) ?? { versions: new Set<string>(), replicas: 0 };
      m.versions.add(r.version);
      m.replicas += 1;
      byModel.set(r.model, m);
    }
    return [...byModel.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, m]) => ({
        id,
        versions: [...m.versions].sort(),
        replicas: m.replicas,
        firstSeen: this.firstSeen.get(id) ?? now,
      }));
  }

  /** Versions of `model` that live replicas serve right now (sorted). */
  liveVersions(model: string, now = Date.now()): string[] {
    return this.models(now).find((m) => m.id === model)?.versions ?? [];
  }

  /** True when at least one live replica serves a model: the bridge can answer generations. */
  ready(now = Date.now()): boolean {
    return this.replicas(now).some((r) => r.live);
  }

  /** Stops listening. */
  close(): void {
    clearInterval(this.timer);
    this.sub?.unsubscribe();
    this.sub = undefined;
  }
}
