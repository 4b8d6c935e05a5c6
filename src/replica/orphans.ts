/**
 * Watches router heartbeats so that a replica can cancel the requests of a router that has
 * gone: without it, the orphans of a dead router would hold batch slots until they finished.
 * The shared heartbeat rules (subject must match body, silence in the router's own intervals,
 * late checks skipped, a bounded table) are the {@link HeartbeatMonitor}'s; what is the orphan
 * watch's own is its timeout and the `onGone` callback.
 */
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { HeartbeatMonitor, newPeer, type Peer, afterPendingIo } from '../cluster/heartbeat-monitor.ts';
import { decodeRouterHeartbeat, type RouterHeartbeat } from '../cluster/messages/heartbeat.ts';
import { ALL_ROUTER_HEARTBEATS } from '../cluster/subjects.ts';
import type { Logger } from '../telemetry/logger.ts';

/**
 * A router is gone when silent for the orphan timeout and for this many of its own announced
 * intervals, whichever is longer: a router that beats slowly is not an orphan maker between beats.
 */
export const ORPHAN_AFTER_MISSED = 3;
/** Shortest check period, so a tiny timeout cannot turn the check into a busy loop. */
const MIN_CHECK_INTERVAL_MS = 50;
/** Checks per timeout window: a gone router is noticed within 1.25 × the timeout. */
const CHECKS_PER_WINDOW = 4;

/** Tracks when each router was last heard from; reports routers silent past the timeout once. */
export class OrphanWatch {
  private readonly routers: HeartbeatMonitor<RouterHeartbeat, Peer>;
  private sub: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
    private readonly onGone: (routerId: string) => void,
    log?: Pick<Logger, 'warn' | 'debug'>,
  ) {
    this.routers = new HeartbeatMonitor({
      role: 'router',
      decode: decodeRouterHeartbeat,
      tickMs: Math.max(MIN_CHECK_INTERVAL_MS, timeoutMs / CHECKS_PER_WINDOW),
      ...(log ? { log } : {}),
    });
  }

  start(): void {
    this.sub = this.nc.subscribe(ALL_ROUTER_HEARTBEATS, {
      callback: (err, msg) => {
        if (!err) this.receive(msg.subject, msg.data, Date.now());
      },
    });
    this.timer = setInterval(() => afterPendingIo(() => this.check(Date.now())), this.routers.tickMs).unref();
  }

  /** A request from a router not heard from yet starts its clock now. */
  track(routerId: string, now = Date.now()): void {
    this.routers.track(routerId, () => newPeer(routerId, now));
  }

  stop(): void {
    clearInterval(this.timer);
    this.sub?.unsubscribe();
  }

  /** One router heartbeat message, received at `now`; one whose subject names another id is ignored. */
  receive(subject: string, data: Uint8Array, now: number): void {
    const hb = this.routers.accept(subject, data);
    if (hb === undefined) return;
    if (hb.state === 'stopped') {
      this.routers.delete(hb.id);
      this.onGone(hb.id);
      return;
    }
    const tracked = this.routers.track(hb.id, () => newPeer(hb.id, now));
    if (tracked !== undefined) this.routers.heard(tracked.peer, hb, now);
  }

  /** Reports routers silent past the timeout (once each); a check that ran late reports none. */
  check(now: number): void {
    if (!this.routers.tick(now)) return;
    for (const router of [...this.routers.peers()]) {
      if (this.routers.silent(router, now, ORPHAN_AFTER_MISSED, this.timeoutMs)) {
        this.routers.delete(router.id);
        this.onGone(router.id);
      }
    }
  }
}
