/**
 * The router's membership table, built from replica heartbeats alone (soft state: any router
 * rebuilds it in one heartbeat interval). A replica is alive, suspect (missed beats: no new work)
 * or dead (missed more, or its engine stopped making progress while it had work: its requests
 * fail over). "Alive" means the inference path moves, not only that a process answers.
 *
 * The shared heartbeat rules (subject must match body, bounded table, late ticks give no verdict,
 * eviction of the long dead) are the {@link HeartbeatMonitor}'s; the stuck rule is
 * `engine-progress.ts`'s. What is the router's own: suspect/dead thresholds, load and fit.
 */
import { firstMark, isStuck, noteProgress, type ProgressMark } from '../cluster/engine-progress.ts';
import {
  HeartbeatMonitor,
  MAX_KNOWN_MODELS,
  newPeer,
  type MonitorCounts,
  type Peer,
} from '../cluster/heartbeat-monitor.ts';
import { decodeReplicaHeartbeat, type ReplicaHeartbeat } from '../cluster/messages/heartbeat.ts';
import type { Logger } from '../telemetry/logger.ts';

/** Liveness as the router sees it. */
export type Liveness = 'alive' | 'suspect' | 'dead';

/** Why a replica was declared dead. */
export type DeathReason = 'missed_heartbeats' | 'stuck' | 'stopped';

/** Default period of {@link Membership.tick}, when the rules name none. */
export const MEMBERSHIP_TICK_MS = 100;
/** Shortest tick period a router uses, however short its heartbeat interval. */
export const MIN_MEMBERSHIP_TICK_MS = 25;

/** One replica as the router knows it. */
export interface Member extends Peer, ProgressMark {
  readonly id: string;
  /** The latest heartbeat. */
  hb: ReplicaHeartbeat;
  liveness: Liveness;
  /** This router's requests running on the replica now. */
  inFlight: number;
  /** This router's requests on the replica when the latest heartbeat arrived (already in its figures). */
  inFlightAtBeat: number;
  /** Heartbeat intervals passed since `lastSeen` that were already counted as missed. */
  missedCounted: number;
}

/** Thresholds of the liveness rules. */
export interface MembershipRules {
  suspectAfterMissed: number;
  deadAfterMissed: number;
  stuckTimeoutMs: number;
  /** Period the caller runs {@link Membership.tick} at (a tick far later is skipped). @default MEMBERSHIP_TICK_MS */
  tickMs?: number;
}

/** What changed in one evaluation. */
export interface MembershipChange {
  id: string;
  from: Liveness | 'new';
  to: Liveness;
  reason?: DeathReason;
}

/** Membership from heartbeats; `tick()` applies the time-based rules. */
export class Membership {
  private readonly monitor: HeartbeatMonitor<ReplicaHeartbeat, Member>;
  /**
   * Every model id (and id@version) any replica ever served: unknown ones are model_not_found.
   * Bounded by MAX_KNOWN_MODELS: past it a new model still routes, but with no live replica it
   * is answered `model_not_found` rather than `unavailable`.
   */
  private readonly everServed = new Set<string>();
  /** Heartbeats missed by any member so far (each interval without a beat, up to its death). */
  missedBeats = 0;

  constructor(
    private readonly rules: MembershipRules,
    log?: Pick<Logger, 'warn' | 'debug'>,
  ) {
    this.monitor = new HeartbeatMonitor({
      role: 'replica',
      decode: decodeReplicaHeartbeat,
      tickMs: rules.tickMs ?? MEMBERSHIP_TICK_MS,
      ...(log ? { log } : {}),
    });
  }

  /** The period `tick()` expects to be called at. */
  get tickMs(): number {
    return this.monitor.tickMs;
  }

  /** Heartbeats dropped (malformed, mismatched, refused) and ticks skipped, so far. */
  get counts(): Readonly<MonitorCounts> {
    return this.monitor.counts;
  }

  /** Records a heartbeat message if its subject names its sender; returns the change it caused. */
  receive(subject: string, data: Uint8Array, now: number): MembershipChange | undefined {
    const hb = this.monitor.accept(subject, data);
    return hb === undefined ? undefined : this.observe(hb, now);
  }

  /** Records an accepted heartbeat; returns the change it caused, if any. */
  observe(hb: ReplicaHeartbeat, now: number): MembershipChange | undefined {
    if (hb.state === 'stopped') {
      this.remember(hb);
      const member = this.monitor.get(hb.id);
      if (!member) return undefined;
      this.monitor.delete(hb.id);
      return { id: hb.id, from: member.liveness, to: 'dead', reason: 'stopped' };
    }
    const tracked = this.monitor.track(hb.id, () => ({
      ...newPeer(hb.id, now),
      ...firstMark(hb, now),
      hb,
      liveness: 'alive',
      inFlight: 0,
      inFlightAtBeat: 0,
      missedCounted: 0,
    }));
    if (tracked === undefined) return undefined;
    this.remember(hb);
    const { peer: member, fresh } = tracked;
    this.monitor.heard(member, hb, now);
    if (fresh) return { id: hb.id, from: 'new', to: 'alive' };
    noteProgress(member, member.hb, hb, now);
    member.hb = hb;
    member.missedCounted = 0;
    member.inFlightAtBeat = member.inFlight;
    if (member.liveness !== 'alive' && !this.isStuck(member, now)) {
      const from = member.liveness;
      member.liveness = 'alive';
      member.goneAt = undefined;
      return { id: hb.id, from, to: 'alive' };
    }
    return undefined;
  }

  /**
   * Applies the missed-beat and stuck rules at time `now`. A tick that ran late (this process
   * stalled) returns no change: the beats that queued meanwhile are read before the next one.
   */
  tick(now: number): MembershipChange[] {
    if (!this.monitor.tick(now)) return [];
    const changes: MembershipChange[] = [];
    for (const member of this.monitor.peers()) {
      const missed = this.monitor.missed(member, now);
      // Each whole interval without a beat is one missed beat, counted once, up to death.
      const whole = Math.min(Math.floor(missed), this.rules.deadAfterMissed);
      if (whole > member.missedCounted) {
        this.missedBeats += whole - member.missedCounted;
        member.missedCounted = whole;
      }
      let to: Liveness = 'alive';
      let reason: DeathReason | undefined;
      if (missed >= this.rules.deadAfterMissed) {
        to = 'dead';
        reason = 'missed_heartbeats';
      } else if (this.isStuck(member, now)) {
        to = 'dead';
        reason = 'stuck';
      } else if (missed >= this.rules.suspectAfterMissed) {
        to = 'suspect';
      }
      if (to !== member.liveness) {
        changes.push(
          reason
            ? { id: member.id, from: member.liveness, to, reason }
            : { id: member.id, from: member.liveness, to },
        );
        member.liveness = to;
        member.goneAt = to === 'dead' ? now : undefined;
      }
    }
    return changes;
  }

  /**
   * Replicas that may take work for this model (and version, when pinned). A pinned version goes
   * to the replicas that serve it to new requests; when none does, to those that still have it
   * loaded after a hot swap (it finishes the requests that started on it, resumes included).
   */
  candidates(model: string, version: string | undefined): Member[] {
    const current: Member[] = [];
    const retiring: Member[] = [];
    for (const m of this.monitor.peers()) {
      if (m.liveness !== 'alive' || m.hb.state !== 'ready' || m.hb.model !== model) continue;
      if (version === undefined || m.hb.modelVersion === version) current.push(m);
      else if (m.hb.retiringVersions?.includes(version)) retiring.push(m);
    }
    return current.length > 0 ? current : retiring;
  }

  /**
   * True when some replica not known dead still has `model@version` loaded (ready, suspect,
   * starting or draining): the version may serve again. False means it is gone for good, as far
   * as this router can tell.
   */
  hasVersion(model: string, version: string): boolean {
    for (const m of this.monitor.peers()) {
      if (m.liveness === 'dead' || m.hb.state === 'stopped' || m.hb.model !== model) continue;
      if (m.hb.modelVersion === version || m.hb.retiringVersions?.includes(version)) return true;
    }
    return false;
  }

  /** True when some replica has ever served this model (and version). */
  known(model: string, version: string | undefined): boolean {
    return this.everServed.has(version === undefined ? model : `${model}@${version}`);
  }

  get(id: string): Member | undefined {
    return this.monitor.get(id);
  }

  /** Every member, for metrics and the cluster view. */
  all(): Member[] {
    return [...this.monitor.peers()];
  }

  private remember(hb: ReplicaHeartbeat): void {
    for (const name of [hb.model, `${hb.model}@${hb.modelVersion}`]) {
      if (this.everServed.size < MAX_KNOWN_MODELS || this.everServed.has(name)) this.everServed.add(name);
    }
  }

  private isStuck(member: Member, now: number): boolean {
    return isStuck(member, member.hb, now, this.rules.stuckTimeoutMs, member.lastSeen);
  }
}

/**
 * Load a router attributes to a replica: the work its heartbeat reports from everyone else, plus
 * this router's own requests on it now (fresher than any heartbeat).
 */
export function loadOf(member: Member): number {
  const reported = member.hb.activeSequences + member.hb.queueDepth;
  return Math.max(0, reported - member.inFlightAtBeat) + member.inFlight;
}

/** True when the replica would refuse one more request with `busy`. */
export function isFull(member: Member): boolean {
  return loadOf(member) >= member.hb.maxBatchSize + member.hb.maxQueue;
}

/**
 * True when the replica's free token budget, as its latest heartbeat reported it, can hold a
 * request of about `estimate` tokens (see `estimateRequestTokens`). A replica with nothing
 * reserved always fits, and so does any replica for an estimate past its whole budget: waiting
 * would never free enough, so the replica is the authority on such a request and answers it
 * (`invalid_request` if it truly is too big) instead of the router calling it `busy` on an
 * estimate, under load or not. A wrong estimate is corrected by the replica's own `busy`, on
 * which the router fails over.
 */
export function fits(member: Member, estimate: number): boolean {
  const { freeTokenBudget, tokenBudget } = member.hb;
  return estimate <= freeTokenBudget || freeTokenBudget >= tokenBudget || estimate > tokenBudget;
}
