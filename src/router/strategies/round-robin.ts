/** Round robin over the candidates, ignoring load: a baseline for benchmarks and debugging. */
import type { Member } from '../membership.ts';
import type { RoutingStrategy } from './strategy.ts';

/** Cycles through candidates in id order. */
export class RoundRobinStrategy implements RoutingStrategy {
  readonly name = 'round-robin';
  private next = 0;

  select(candidates: readonly Member[]): Member {
    const sorted = [...candidates].sort((a, b) => a.id.localeCompare(b.id));
    return sorted[this.next++ % sorted.length]!;
  }
}
