/**
 * Watches router heartbeats so that a replica can cancel the requests of a router that has
 * gone: without it, the orphans of a dead router would hold batch slots until they finished.
 */
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { decodeRouterHeartbeat } from '../cluster/messages/heartbeat.ts';
import { ALL_ROUTER_HEARTBEATS } from '../cluster/subjects.ts';

/** Tracks when each router was last heard from; reports routers silent past the timeout once. */
export class OrphanWatch {
  private readonly lastSeen = new Map<string, number>();
  private sub: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
    private readonly onGone: (routerId: string) => void,
  ) {}

  start(): void {
    this.sub = this.nc.subscribe(ALL_ROUTER_HEARTBEATS, {
      callback: (err, msg) => {
        if (err) return;
        try {
          const hb = decodeRouterHeartbeat(msg.data);
          if (hb.state === 'stopped') {
            this.lastSeen.delete(hb.id);
            this.onGone(hb.id);
          } else {
            this.lastSeen.set(hb.id, Date.now());
          }
        } catch {
          // A malformed heartbeat says nothing about liveness; ignore it.
        }
      },
    });
    this.timer = setInterval(() => this.check(), Math.max(50, this.timeoutMs / 4)).unref();
  }

  /** A request from a router not heard from yet starts its clock now. */
  track(routerId: string): void {
    if (!this.lastSeen.has(routerId)) this.lastSeen.set(routerId, Date.now());
  }

  stop(): void {
    clearInterval(this.timer);
    this.sub?.unsubscribe();
  }

  private check(): void {
    const now = Date.now();
    for (const [id, seen] of this.lastSeen) {
      if (now - seen > this.timeoutMs) {
        this.lastSeen.delete(id);
        this.onGone(id);
      }
    }
  }
}
