/**
 * Where a new request goes while its model has a canary rollout: the arm its request id hashes
 * to ({@link armOf}: every router agrees, and a resend, which names the version it started on,
 * is never split again), then a replica of that arm's version. An arm with no live replica with
 * room falls back to the other arm: the request is served, and it is recorded on the arm it was
 * placed on (the evidence compares what each version really served).
 */
import { armOf } from '../rollout/arm.ts';
import { FINAL_ROLLOUT_STATES, type RequestRollout, type RolloutArm } from '../rollout/types.ts';
import type { Member, Membership } from './membership.ts';
import { place } from './placement.ts';
import type { AppliedRollout } from './rollouts.ts';
import type { RoutingStrategy } from './strategies/strategy.ts';

/** A split placement: the replica of the first attempt and the arm it is on. */
export interface SplitPlacement {
  first: Member;
  rollout: RequestRollout;
}

/**
 * True when new, unpinned requests of the model are split: while the rollout carries weight, and
 * at weight 0 until it is over (starting, rolling back: canary replicas are loaded, and unpinned
 * requests must all go to the stable arm, not to whichever replica placement picks). A final
 * rollout at weight 0, or none, splits nothing.
 */
export function splits(rollout: AppliedRollout | undefined): rollout is AppliedRollout {
  return rollout !== undefined && (rollout.weight > 0 || !FINAL_ROLLOUT_STATES.has(rollout.state));
}

/**
 * The arm of a request that names its version (a resend with tokens, a caller's pin): the
 * canary's or the stable version's arm while the rollout is live, none for another version.
 */
export function armOfVersion(
  rollout: AppliedRollout | undefined,
  version: string,
): RequestRollout | undefined {
  if (rollout === undefined || (FINAL_ROLLOUT_STATES.has(rollout.state) && rollout.weight === 0)) {
    return undefined;
  }
  const arm: RolloutArm | undefined =
    version === rollout.canary ? 'canary' : version === rollout.stable ? 'stable' : undefined;
  return arm === undefined ? undefined : { id: rollout.id, arm };
}

/**
 * The replica for a new request of `rollout`'s model, on its arm or else on the other one;
 * undefined when neither arm has a replica with room.
 */
export function placeSplit(
  rollout: AppliedRollout,
  requestId: string,
  membership: Membership,
  estimate: number,
  strategy: RoutingStrategy,
): SplitPlacement | undefined {
  const wanted = armOf(rollout.id, requestId, rollout.weight);
  const order: RolloutArm[] = wanted === 'canary' ? ['canary', 'stable'] : ['stable', 'canary'];
  for (const arm of order) {
    const first = place(armCandidates(rollout, arm, membership), NO_EXCLUSIONS, estimate, strategy);
    if (first !== undefined) return { first, rollout: { id: rollout.id, arm } };
  }
  return undefined;
}

/**
 * The replicas serving an arm's version to new requests (not those that only finish it after a
 * swap). The stable arm, when no replica serves the stable version (they all swapped on), takes
 * any replica of the model that does not serve the canary.
 */
function armCandidates(rollout: AppliedRollout, arm: RolloutArm, membership: Membership): Member[] {
  const version = arm === 'canary' ? rollout.canary : rollout.stable;
  const serving = membership.candidates(rollout.model, version).filter((m) => m.hb.modelVersion === version);
  if (serving.length > 0 || arm === 'canary') return serving;
  return membership.candidates(rollout.model, undefined).filter((m) => m.hb.modelVersion !== rollout.canary);
}

const NO_EXCLUSIONS: ReadonlySet<string> = new Set();
