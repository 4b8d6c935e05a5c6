/** Least loaded: the candidate with the lowest load (ties: the first). Best with fresh load figures. */
import { loadOf, type Member } from '../membership.ts';
import type { RoutingStrategy } from './strategy.ts';

/** Always the least-loaded candidate. */
export class LeastLoadedStrategy implements RoutingStrategy {
  readonly name = 'least-loaded';

  select(candidates: readonly Member[]): Member {
    let best = candidates[0]!;
    for (const c of candidates) if (loadOf(c) < loadOf(best)) best = c;
    return best;
  }
}
