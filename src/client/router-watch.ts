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
 */
import type { NatsConnection, Status, Subscription } from '@nats-io/nats-core';
import { decodeRouterHeartbeat } from '../cluster/messages/heartbeat.ts';
import { routerHeartbeatSubject } from '../cluster/subjects.ts';
import { UnavailableError, type SwitchyardError } from '../errors/errors.ts';

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

interface Entry {
  sub: Subscription | undefined;
  /** When the last heartbeat arrived (epoch ms); 0 before the first. */
  lastBeat: number;
  /** The heartbeat subscription failed (e.g. no permission): silence proves nothing then. */
  blind: boolean;
  leases: Set<Lease>;
}

/** Shared by every request of one client: one heartbeat subscription per router in use. */
export class RouterWatch {
  private readonly nc: NatsConnection;
  private readonly silenceMs: number;
  private readonly entries = new Map<string, Entry>();
  private readonly status: AsyncIterable<Status>;
  private timer: NodeJS.Timeout | undefined;
  private disconnected = false;
  private closed = false;

  /** `silenceMs` 0 turns the silence check off (reconnects still fail requests over). */
  constructor(nc: NatsConnection, silenceMs: number) {
    this.nc = nc;
    this.silenceMs = silenceMs;
    this.status = nc.status();
    void this.followStatus();
  }

  /** Watches `routerId` for one request; `onGone` runs at most once, after which the lease is released. */
  watch(routerId: string, onGone: (reason: SwitchyardError) => void): RouterLease {
    const lease: Lease = { routerId, lastSign: Date.now(), onGone };
    if (this.closed) return this.handleOf(lease);
    let entry = this.entries.get(routerId);
    if (entry === undefined) {
      entry = { sub: undefined, lastBeat: 0, blind: false, leases: new Set() };
      this.entries.set(routerId, entry);
      if (this.silenceMs > 0) entry.sub = this.subscribe(routerId, entry);
    }
    entry.leases.add(lease);
    if (this.silenceMs > 0 && this.timer === undefined) {
      const period = Math.max(MIN_CHECK_INTERVAL_MS, Math.floor(this.silenceMs / CHECKS_PER_WINDOW));
      this.timer = setInterval(() => this.check(), period).unref();
    }
    return this.handleOf(lease);
  }

  /** Stops every subscription and timer; pending leases never fire. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    for (const entry of this.entries.values()) entry.sub?.unsubscribe();
    this.entries.clear();
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
          entry.lastBeat = Date.now();
          let stopped = false;
          try {
            stopped = decodeRouterHeartbeat(msg.data).state === 'stopped';
          } catch {
            // A malformed beat is still a beat; the router's own monitors report the bug.
          }
          if (stopped) this.fireAll(entry, new UnavailableError(`router ${routerId} stopped`));
        },
      });
    } catch {
      entry.blind = true;
      return undefined;
    }
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

  private check(): void {
    if (this.disconnected) return;
    const now = Date.now();
    for (const [routerId, entry] of [...this.entries]) {
      if (entry.blind) continue;
      for (const lease of [...entry.leases]) {
        const silent = now - Math.max(entry.lastBeat, lease.lastSign);
        if (silent > this.silenceMs) {
          this.fire(
            lease,
            new UnavailableError(`router ${routerId} went silent: no heartbeat for ${silent} ms`),
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
          for (const entry of [...this.entries.values()]) this.fireAll(entry, reason);
        }
      }
    } catch {
      // The status iterator ends with the connection; nothing is left to watch then.
    }
  }
}
