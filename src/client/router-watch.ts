/**
 * Watches the routers that own a client's requests. A router that dies mid-request sends no
 * `end` and no `error`: without a watch the client would wait for its deadline. Routers publish
 * heartbeats, so the client presumes a router gone when neither its heartbeats nor the request's
 * own stream showed a sign of life for `silenceMs`, and resends the request elsewhere.
 *
 * A drop of the client's own NATS connection is treated the same way: replies published while it
 * was away are lost (nats.js does not replay them), and a lost `end` would leave the stream
 * waiting on a router that is alive and heartbeating. So every watched request is failed over
 * on reconnect, and silence is not counted while disconnected.
 *
 * The shared heartbeat rules (a beat counts only when its subject names the id its body claims,
 * silence in the router's own announced intervals, late checks skipped, a bounded table) are the
 * {@link HeartbeatMonitor}'s; the leases and the reconnect rule are the watch's own.
 */
import type { NatsConnection, Status, Subscription } from '@nats-io/nats-core';
import { HeartbeatMonitor, newPeer, type Peer, afterPendingIo } from '../cluster/heartbeat-monitor.ts';
import { decodeRouterHeartbeat, type RouterHeartbeat } from '../cluster/messages/heartbeat.ts';
import { routerHeartbeatSubject } from '../cluster/subjects.ts';
import { UnavailableError, type SwitchyardError } from '../errors/errors.ts';

/**
 * A router is presumed gone when silent for `silenceMs` and for this many of its own announced
 * intervals, whichever is longer: a router that beats slowly is not dead between two beats.
 */
export const ROUTER_SILENT_AFTER_MISSED = 3;

/** Silence checks per silence window: a gone router is noticed within 1.25 × silenceMs. */
const CHECKS_PER_WINDOW = 4;
/** Shortest check period, so a tiny silence window cannot turn the check into a busy loop. */
const MIN_CHECK_INTERVAL_MS = 10;

/** One request's claim on the watch of its router. */
export interface RouterLease {
  /** Records a sign of life of the request's own stream (a chunk): the router is alive. */
  touch(): void;
  /** Stops watching for this request; safe to call more than once. */
  release(): void;
}

interface Lease {
  routerId: string;
  lastSign: number;
  onGone: (reason: SwitchyardError) => void;
}

/** One watched router: `lastSeen` is its latest accepted heartbeat, or when the watch began. */
interface Entry extends Peer {
  sub: Subscription | undefined;
  /** The heartbeat subscription failed (e.g. no permission): silence proves nothing then. */
  blind: boolean;
  leases: Set<Lease>;
}

/** Shared by every request of one client: one heartbeat subscription per router in use. */
export class RouterWatch {
  private readonly nc: NatsConnection;
  private readonly silenceMs: number;
  private readonly entries: HeartbeatMonitor<RouterHeartbeat, Entry>;
  private readonly status: AsyncIterable<Status>;
  private timer: NodeJS.Timeout | undefined;
  private disconnected = false;
  private closed = false;

  /** `silenceMs` 0 turns the silence check off (reconnects still fail requests over). */
  constructor(nc: NatsConnection, silenceMs: number) {
    this.nc = nc;
    this.silenceMs = silenceMs;
    this.entries = new HeartbeatMonitor({
      role: 'router',
      decode: decodeRouterHeartbeat,
      tickMs: Math.max(MIN_CHECK_INTERVAL_MS, Math.floor(silenceMs / CHECKS_PER_WINDOW)),
    });
    this.status = nc.status();
    void this.followStatus();
  }

  /** Watches `routerId` for one request; `onGone` runs at most once, after which the lease is released. */
  watch(routerId: string, onGone: (reason: SwitchyardError) => void): RouterLease {
    const now = Date.now();
    const lease: Lease = { routerId, lastSign: now, onGone };
    if (this.closed) return this.handleOf(lease);
    const tracked = this.entries.track(routerId, () => ({
      ...newPeer(routerId, now),
      sub: undefined,
      blind: false,
      leases: new Set<Lease>(),
    }));
    // A full table (MAX_MEMBERS routers at once) leaves this request unwatched: its deadline holds.
    if (tracked === undefined) return this.handleOf(lease);
    const entry = tracked.peer;
    if (tracked.fresh && this.silenceMs > 0) entry.sub = this.subscribe(routerId, entry);
    entry.leases.add(lease);
    if (this.silenceMs > 0 && this.timer === undefined) {
      this.entries.restartTicks();
      this.timer = setInterval(
        () => afterPendingIo(() => this.check(Date.now())),
        this.entries.tickMs,
      ).unref();
    }
    return this.handleOf(lease);
  }

  /** Stops every subscription and timer; pending leases never fire. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    for (const entry of [...this.entries.peers()]) {
      entry.sub?.unsubscribe();
      this.entries.delete(entry.id);
    }
    // nats.js returns a QueuedIterator whose stop() ends the status loop without waiting for an event.
    (this.status as { stop?: () => void }).stop?.();
  }

  private handleOf(lease: Lease): RouterLease {
    return {
      touch: () => {
        lease.lastSign = Date.now();
      },
      release: () => this.release(lease),
    };
  }

  private subscribe(routerId: string, entry: Entry): Subscription | undefined {
    try {
      return this.nc.subscribe(routerHeartbeatSubject(routerId), {
        callback: (err, msg) => {
          if (err) {
            entry.blind = true;
            process.emitWarning(`switchyard client cannot watch router ${routerId}: ${err.message}`);
            return;
          }
          this.receive(entry, msg.subject, msg.data, Date.now());
        },
      });
    } catch {
      entry.blind = true;
      return undefined;
    }
  }

  /**
   * One heartbeat message on the entry's subject. Only a beat whose body names the router its
   * subject names counts, as a sign of life or as `stopped`; a malformed one proves nothing.
   */
  private receive(entry: Entry, subject: string, data: Uint8Array, now: number): void {
    const hb = this.entries.accept(subject, data);
    if (hb === undefined || hb.id !== entry.id) return;
    this.entries.heard(entry, hb, now);
    if (hb.state === 'stopped') this.fireAll(entry, new UnavailableError(`router ${entry.id} stopped`));
  }

  private release(lease: Lease): void {
    const entry = this.entries.get(lease.routerId);
    if (entry === undefined || !entry.leases.delete(lease)) return;
    if (entry.leases.size === 0) {
      entry.sub?.unsubscribe();
      this.entries.delete(lease.routerId);
    }
    if (this.entries.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private fire(lease: Lease, reason: SwitchyardError): void {
    this.release(lease);
    try {
      lease.onGone(reason);
    } catch (err) {
      process.emitWarning(`router watch handler threw: ${String(err)}`);
    }
  }

  private fireAll(entry: Entry, reason: SwitchyardError): void {
    for (const lease of [...entry.leases]) this.fire(lease, reason);
  }

  /**
   * Fails over the leases of routers silent past their window. Runs from the timer at `now`; a
   * check that itself ran late (this process stalled, beats still unread) judges nobody.
   */
  check(now: number): void {
    if (this.disconnected) return;
    if (!this.entries.tick(now)) return;
    for (const entry of [...this.entries.peers()]) {
      if (entry.blind) continue;
      const window = this.entries.windowMs(entry, ROUTER_SILENT_AFTER_MISSED, this.silenceMs);
      for (const lease of [...entry.leases]) {
        const silent = now - Math.max(entry.lastSeen, lease.lastSign);
        if (silent > window) {
          this.fire(
            lease,
            new UnavailableError(`router ${entry.id} went silent: no heartbeat for ${silent} ms`),
          );
        }
      }
    }
  }

  private async followStatus(): Promise<void> {
    try {
      for await (const s of this.status) {
        if (this.closed) return;
        if (s.type === 'disconnect') this.disconnected = true;
        if (s.type === 'reconnect') {
          this.disconnected = false;
          const reason = new UnavailableError('the connection to NATS dropped: replies may have been lost');
          for (const entry of [...this.entries.peers()]) this.fireAll(entry, reason);
        }
      }
    } catch {
      // The status iterator ends with the connection; nothing is left to watch then.
    }
  }
}
