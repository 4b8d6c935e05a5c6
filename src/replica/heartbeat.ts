/**
 * The replica's heartbeat publisher: a fixed-interval beat with live load and the engine's
 * progress counter, and the start and size of the step running now. Routers count missed beats (a
 * separate monitor, as nats.js' idle-heartbeat monitor) and compare progress between beats to
 * tell a stuck engine from a busy one; the running step's size tells them how long a long
 * prefill may take before its silence means stuck.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { encodeReplicaHeartbeat } from '../cluster/messages/heartbeat.ts';
import { replicaHeartbeatSubject } from '../cluster/subjects.ts';
import type { VersionedEngine } from './versions.ts';
import type { CompiledReplicaOptions } from './options.ts';
import { heartbeatStateOf, type ActorState } from '../cluster/actor-state.ts';
import { AnnouncedInterval } from './heartbeat-pace.ts';

/** Publishes one replica's heartbeats. */
export class HeartbeatPublisher {
  private timer: NodeJS.Timeout | undefined;
  /** Fault injection: while true no beat is sent (the process is alive, the cluster cannot tell). */
  dropped = false;
  /** Beats sent, for tests and metrics. */
  sent = 0;
  private readonly subject: string;
  /** The interval announced in each beat: the configured one, stretched while beats run late. */
  private readonly announced: AnnouncedInterval;

  constructor(
    private readonly nc: NatsConnection,
    private readonly options: CompiledReplicaOptions,
    private readonly engine: VersionedEngine,
    private readonly state: () => ActorState,
    /** A hot swap in progress (the version it loads) or the last one's failure. */
    private readonly swap: () => { to?: string; error?: string } = () => ({}),
  ) {
    this.subject = replicaHeartbeatSubject(options.id);
    this.announced = new AnnouncedInterval(options.heartbeatIntervalMs);
  }

  start(): void {
    this.timer ??= setInterval(() => {
      this.announced.tick(Date.now());
      this.beat();
    }, this.options.heartbeatIntervalMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Sends one beat now (also on state changes, so routers learn of a drain at once). */
  beat(): void {
    if (this.dropped || this.nc.isClosed()) return;
    const stats = this.engine.stats();
    const { info } = this.engine;
    const state = this.state();
    const swap = this.swap();
    const retiring = this.engine.retiring.map((v) => v.engine.info.version);
    try {
      this.nc.publish(
        this.subject,
        encodeReplicaHeartbeat({
          id: this.options.id,
          model: info.id,
          modelVersion: info.version,
          device: this.engine.device,
          state: heartbeatStateOf(state),
          queueDepth: stats.queueDepth,
          activeSequences: stats.activeSequences,
          maxBatchSize: stats.maxBatchSize,
          maxQueue: this.engine.maxQueue,
          freeTokenBudget: stats.freeTokenBudget,
          tokenBudget: stats.tokenBudget,
          progress: stats.progress,
          busySince: stats.busySince,
          stepStartedAt: stats.stepStartedAt,
          stepTokens: stats.stepTokens,
          stepExpectedMs: stats.stepExpectedMs,
          sentAt: Date.now(),
          intervalMs: this.announced.current(),
          ...(this.engine.current.digest ? { modelDigest: this.engine.current.digest } : {}),
          ...(retiring.length > 0 ? { retiringVersions: retiring } : {}),
          ...(swap.to !== undefined ? { swappingTo: swap.to } : {}),
          ...(swap.error !== undefined ? { swapError: swap.error } : {}),
        }),
      );
      this.sent++;
    } catch {
      // Draining or closed connection: the next beat (or the router's miss counter) covers it.
    }
  }
}
