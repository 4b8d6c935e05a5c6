/**
 * The router's membership table, built from replica heartbeats alone (soft state: any router
 * rebuilds it in one heartbeat interval). A replica is alive, suspect (missed beats: no new work)
 * or dead (missed more, or its engine stopped making progress while it had work: its requests
 * fail over). "Alive" means the inference path moves, not only that a process answers.
 */
import type { ReplicaHeartbeat } from '../cluster/messages/heartbeat.ts';

/** Liveness as the router sees it. */
export type Liveness = 'alive' | 'suspect' | 'dead';

/** Why a replica was declared dead. */
export type DeathReason = 'missed_heartbeats' | 'stuck' | 'stopped';

/** One replica as the router knows it. */
export interface Member {
  readonly id: string;
  /** The latest heartbeat. */
  hb: ReplicaHeartbeat;
  liveness: Liveness;
  /** Local time the latest heartbeat arrived. */
  lastSeen: number;
  /** Local time the progress counter last moved (or the replica went idle). */
  progressAt: number;
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
  private readonly members = new Map<string, Member>();
  /** Every model id (and id@version) any replica ever served: unknown ones are model_not_found. */
  private readonly everServed = new Set<string>();
  /** Heartbeats missed by any member so far (each interval without a beat, up to its death). */
  missedBeats = 0;

  constructor(private readonly rules: MembershipRules) {}

  /** Records a heartbeat; returns the change it caused, if any. */
  observe(hb: ReplicaHeartbeat, now: number): MembershipChange | undefined {
    this.everServed.add(hb.model);
    this.everServed.add(`${hb.model}@${hb.modelVersion}`);
    const member = this.members.get(hb.id);
    if (hb.state === 'stopped') {
      if (!member) return undefined;
      this.members.delete(hb.id);
      return { id: hb.id, from: member.liveness, to: 'dead', reason: 'stopped' };
    }
    if (!member) {
      this.members.set(hb.id, {
        id: hb.id,
        hb,
        liveness: 'alive',
        lastSeen: now,
        progressAt: now,
        inFlight: 0,
        inFlightAtBeat: 0,
        missedCounted: 0,
      });
      return { id: hb.id, from: 'new', to: 'alive' };
    }
    const moved = hb.progress !== member.hb.progress || !hasWork(hb);
    member.hb = hb;
    member.lastSeen = now;
    member.missedCounted = 0;
    member.inFlightAtBeat = member.inFlight;
    if (moved) member.progressAt = now;
    if (member.liveness !== 'alive' && !this.isStuck(member, now)) {
      const from = member.liveness;
      member.liveness = 'alive';
      return { id: hb.id, from, to: 'alive' };
    }
    return undefined;
  }

  /** Applies the missed-beat and stuck rules at time `now`. */
  tick(now: number): MembershipChange[] {
    const changes: MembershipChange[] = [];
    for (const member of this.members.values()) {
      const missed = (now - member.lastSeen) / member.hb.intervalMs;
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
      }
    }
    return changes;
  }

  /** Replicas that may take new work for this model (and version, when pinned). */
  candidates(model: string, version: string | undefined): Member[] {
    const out: Member[] = [];
    for (const m of this.members.values()) {
      if (m.liveness !== 'alive' || m.hb.state !== 'ready' || m.hb.model !== model) continue;
      if (version !== undefined && m.hb.modelVersion !== version) continue;
      out.push(m);
    }
    return out;
  }

  /** True when some replica has ever served this model (and version). */
  known(model: string, version: string | undefined): boolean {
    return this.everServed.has(version === undefined ? model : `${model}@${version}`);
  }

  get(id: string): Member | undefined {
    return this.members.get(id);
  }

  /** Every member, for metrics and the cluster view. */
  all(): Member[] {
    return [...this.members.values()];
  }

  private isStuck(member: Member, now: number): boolean {
    return hasWork(member.hb) && now - member.progressAt >= this.rules.stuckTimeoutMs;
  }
}

function hasWork(hb: ReplicaHeartbeat): boolean {
  return hb.activeSequences + hb.queueDepth > 0;
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
