/**
 * Power of two choices: sample two candidates at random and take the less loaded. Nearly as good
 * as least-loaded with fresh load figures, and much better with stale ones: routers that share
 * the same heartbeat view do not all pile onto the one replica that looked idle.
 */
import { loadOf, type Member } from '../membership.ts';
import type { RoutingStrategy } from './strategy.ts';

/** Power-of-two-choices on heartbeat load plus this router's own sends since the beat. */
export class PowerOfTwoStrategy implements RoutingStrategy {
  readonly name = 'power-of-two';

  constructor(private readonly random: () => number = Math.random) {}

  select(candidates: readonly Member[]): Member {
    if (candidates.length === 1) return candidates[0]!;
    const i = Math.floor(this.random() * candidates.length);
    let j = Math.floor(this.random() * (candidates.length - 1));
    if (j >= i) j++;
    const a = candidates[i]!;
    const b = candidates[j]!;
    return loadOf(b) < loadOf(a) ? b : a;
  }
}
