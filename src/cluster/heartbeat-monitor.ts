/**
 * The rules every heartbeat monitor shares, written once: the router's membership table, the
 * bridge's cluster view, the replica's orphan watch and the client's router watch all listen to
 * heartbeats, and each needs the same four guarantees before it draws its own conclusion.
 *
 * - Peers are who they say (DESIGN.md invariant 9): a heartbeat counts only when the id in its
 *   subject is the id in its body. Anything else is dropped and counted, never believed.
 * - Silence is counted in the sender's own announced interval, bounded by
 *   {@link HEARTBEAT_INTERVAL_MAX_MS}, so monitors need no shared configuration.
 * - Liveness that does not lie: a tick that itself ran late (this process's event loop stalled)
 *   gives no verdict. The heartbeats that queued up during the stall are read after the timer
 *   fires (Node runs timers before I/O), so judging then would declare every peer dead at once.
 * - Bounded state: the table holds at most {@link MAX_MEMBERS} peers (a full table refuses new
 *   ids, counted; known ids still update), and peers their user declared gone are evicted
 *   {@link GONE_EVICT_AFTER_MS} after that verdict and their last beat.
 *
 * What silence means (suspect, dead, orphaned, resend) stays with each user.
 */
import type { Logger } from '../telemetry/logger.ts';
import { HEARTBEAT_INTERVAL_MAX_MS, type HeartbeatState } from './messages/heartbeat.ts';
import { heartbeatSubjectId } from './subjects.ts';

/**
 * Most peers one monitor keeps. Ids arrive from the network, so the table must not grow with
 * whatever a buggy or hostile publisher sends; 1,024 replicas (or routers) is far past any
 * cluster this project runs, and a full table costs a few hundred KiB.
 */
export const MAX_MEMBERS = 1_024;

/**
 * Most model ids (and id@version pairs) a monitor of replica heartbeats remembers. Model names
 * arrive in heartbeats too, and must not grow a set (or mint metric labels) with whatever a
 * publisher invents.
 */
export const MAX_KNOWN_MODELS = 1_024;

/**
 * How long a peer declared gone (dead, orphaned) stays in the table before it is forgotten,
 * counted from the later of the verdict and its last heartbeat: long enough for operators and
 * metrics to see it dead, short enough that churn (restarts with fresh ids) cannot fill the table.
 */
export const GONE_EVICT_AFTER_MS = 60_000;

/**
 * A tick that fires more than this many of its own periods after it was due ran late: the
 * monitor's event loop stalled, and its picture of who beat is older than the clock says.
 * Two, not one: a router busy forwarding chunks fires its 100 ms tick 200 ms apart now and then,
 * which is no stall, and skipping those verdicts slowed bench:cluster's kill → resumed token
 * from about 490 to 630 ms. Monitors also judge after the pending I/O has been read
 * ({@link afterPendingIo}), so beats that queued during a short stall count before the verdict.
 */
export const LATE_TICK_PERIODS = 2;

/**
 * Runs `verdict` after the I/O that is already waiting has been read: a timer fires before the
 * event loop polls its sockets, so heartbeats that arrived while the loop was busy are still
 * unread when the tick callback runs; setImmediate runs after the poll phase.
 */
export function afterPendingIo(verdict: () => void): void {
  setImmediate(verdict);
}

/**
 * Late ticks skipped in a row at most. A loop that is late on every tick still gives a verdict
 * on every (MAX_SKIPPED_TICKS + 1)-th one, so a dead peer is declared late, never not at all.
 */
export const MAX_SKIPPED_TICKS = 3;

/** Which heartbeat subjects a monitor reads. */
export type HeartbeatRole = 'replica' | 'router';

/** What a monitor reads from any heartbeat body. */
export interface Beat {
  readonly id: string;
  readonly state: HeartbeatState;
  readonly intervalMs: number;
}

/** One peer as a monitor knows it; each user extends it with what it keeps about the peer. */
export interface Peer {
  readonly id: string;
  /** Local time (epoch ms) of the latest accepted heartbeat, or of tracking before the first. */
  lastSeen: number;
  /** The peer's announced heartbeat period, bounded; undefined before its first heartbeat. */
  intervalMs: number | undefined;
  /** Local time the user declared the peer gone; undefined while it counts as present. */
  goneAt: number | undefined;
}

/** The {@link Peer} fields of a peer first known at `now`, to spread into a user's record. */
export function newPeer(id: string, now: number): Peer {
  return { id, lastSeen: now, intervalMs: undefined, goneAt: undefined };
}

/** What a monitor dropped or skipped, for metrics and tests. */
export interface MonitorCounts {
  /** Bodies that did not decode. */
  malformed: number;
  /** Heartbeats whose subject names another id (or role) than their body: bugs or spoofs. */
  mismatched: number;
  /** New ids turned away because the table was full. */
  refused: number;
  /** Ticks whose verdict was skipped because they ran late. */
  lateTicks: number;
  /** Gone peers forgotten. */
  evicted: number;
}

/** Options of a {@link HeartbeatMonitor}. */
export interface HeartbeatMonitorOptions<H extends Beat> {
  /** Whose heartbeats these are: the subject must say the same. */
  role: HeartbeatRole;
  /** The one decoder of the body (throws on a malformed one). */
  decode: (data: Uint8Array) => H;
  /** Period of the user's tick timer, to tell a late tick. */
  tickMs: number;
  /** @default MAX_MEMBERS */
  maxPeers?: number;
  /** @default GONE_EVICT_AFTER_MS */
  evictAfterMs?: number;
  /** Malformed bodies are logged at warn (a peer's bug); mismatches and refusals at debug. */
  log?: Pick<Logger, 'warn' | 'debug'>;
}

/** A bounded table of peers fed by heartbeats, with the shared acceptance and timing rules. */
export class HeartbeatMonitor<H extends Beat, P extends Peer> {
  readonly counts: MonitorCounts = { malformed: 0, mismatched: 0, refused: 0, lateTicks: 0, evicted: 0 };
  readonly tickMs: number;
  private readonly table = new Map<string, P>();
  private readonly role: HeartbeatRole;
  private readonly decode: (data: Uint8Array) => H;
  private readonly maxPeers: number;
  private readonly evictAfterMs: number;
  private readonly log: Pick<Logger, 'warn' | 'debug'> | undefined;
  private lastTick: number | undefined;
  private skipped = 0;

  constructor(opts: HeartbeatMonitorOptions<H>) {
    this.role = opts.role;
    this.decode = opts.decode;
    this.tickMs = opts.tickMs;
    this.maxPeers = opts.maxPeers ?? MAX_MEMBERS;
    this.evictAfterMs = opts.evictAfterMs ?? GONE_EVICT_AFTER_MS;
    this.log = opts.log;
  }

  /**
   * The heartbeat in a message, or undefined (counted) when its body is malformed or its subject
   * does not name the id and role the body claims.
   */
  accept(subject: string, data: Uint8Array): H | undefined {
    let hb: H;
    try {
      hb = this.decode(data);
    } catch (err) {
      this.counts.malformed++;
      this.log?.warn({ err: (err as Error).message, subject }, 'malformed heartbeat ignored');
      return undefined;
    }
    const named = heartbeatSubjectId(subject);
    if (named?.role !== this.role || named.id !== hb.id) {
      this.counts.mismatched++;
      this.log?.debug({ subject, claimed: hb.id }, 'heartbeat whose subject names another id ignored');
      return undefined;
    }
    return hb;
  }

  /**
   * The peer `id`, made by `create` when it is new and the table has room (a full table first
   * forgets one peer already declared gone, if any); undefined, counted, when there is none.
   */
  track(id: string, create: () => P): { peer: P; fresh: boolean } | undefined {
    const known = this.table.get(id);
    if (known !== undefined) return { peer: known, fresh: false };
    if (this.table.size >= this.maxPeers && !this.evictOneGone()) {
      this.counts.refused++;
      this.log?.debug({ id, max: this.maxPeers }, 'heartbeat of a new peer refused: table full');
      return undefined;
    }
    const peer = create();
    this.table.set(id, peer);
    return { peer, fresh: true };
  }

  /** Records an accepted heartbeat of `peer`, received at `now`. */
  heard(peer: P, hb: Beat, now: number): void {
    peer.lastSeen = now;
    peer.intervalMs = Math.min(Math.max(1, hb.intervalMs), HEARTBEAT_INTERVAL_MAX_MS);
  }

  /** Intervals (fractional) since the peer's last beat, by its announced period; 0 before one. */
  missed(peer: P, now: number): number {
    return peer.intervalMs === undefined ? 0 : (now - peer.lastSeen) / peer.intervalMs;
  }

  /**
   * How long the peer may be silent: `missed` of its announced intervals, and at least `floorMs`
   * (a configured timeout, which alone applies before its first heartbeat).
   */
  windowMs(peer: P, missed: number, floorMs = 0): number {
    return Math.max(floorMs, missed * (peer.intervalMs ?? 0));
  }

  /** True when the peer has been silent longer than {@link windowMs}. */
  silent(peer: P, now: number, missed: number, floorMs = 0): boolean {
    return now - peer.lastSeen > this.windowMs(peer, missed, floorMs);
  }

  /**
   * Starts one tick at `now`: evicts peers gone long enough and returns true when the user may
   * judge; false when this tick ran late and its verdict is skipped (see the module comment).
   */
  tick(now: number): boolean {
    const prev = this.lastTick;
    this.lastTick = now;
    const late = prev !== undefined && now - prev > this.tickMs * (1 + LATE_TICK_PERIODS);
    if (late && this.skipped < MAX_SKIPPED_TICKS) {
      this.skipped++;
      this.counts.lateTicks++;
      this.log?.debug({ lateMs: now - (prev + this.tickMs) }, 'monitor tick ran late: verdict skipped');
      return false;
    }
    this.skipped = 0;
    for (const [id, peer] of this.table) {
      if (peer.goneAt !== undefined && now - Math.max(peer.goneAt, peer.lastSeen) >= this.evictAfterMs) {
        this.table.delete(id);
        this.counts.evicted++;
      }
    }
    return true;
  }

  /** Forgets when the last tick ran: call when the user's tick timer (re)starts after a pause. */
  restartTicks(): void {
    this.lastTick = undefined;
    this.skipped = 0;
  }

  get(id: string): P | undefined {
    return this.table.get(id);
  }

  delete(id: string): boolean {
    return this.table.delete(id);
  }

  get size(): number {
    return this.table.size;
  }

  /** Every peer, in insertion order. */
  peers(): IterableIterator<P> {
    return this.table.values();
  }

  private evictOneGone(): boolean {
    let oldest: P | undefined;
    for (const peer of this.table.values()) {
      if (peer.goneAt !== undefined && (oldest === undefined || peer.lastSeen < oldest.lastSeen))
        oldest = peer;
    }
    if (oldest === undefined) return false;
    this.table.delete(oldest.id);
    this.counts.evicted++;
    return true;
  }
}
