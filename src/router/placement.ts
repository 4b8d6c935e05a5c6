/**
 * Where a request goes: among the live, ready replicas of its model not yet tried, one with room
 * in its batch or queue. Replicas whose free token budget holds the request by the router's
 * estimate come first: one that lacks it would only queue the request until budget frees. When
 * none has the budget, a replica with queue room still takes it (refusing would turn a bounded
 * queue into `busy` answers, measured by bench:cluster); its own `busy` corrects a wrong estimate.
 */
import { fits, isFull, type Member } from './membership.ts';
import type { RoutingStrategy } from './strategies/strategy.ts';

/** The replica for a request of about `estimate` tokens, or undefined when every one is full. */
export function place(
  candidates: readonly Member[],
  excluded: ReadonlySet<string>,
  estimate: number,
  strategy: RoutingStrategy,
): Member | undefined {
  const open = candidates.filter((m) => !excluded.has(m.id) && !isFull(m));
  const fitting = open.filter((m) => fits(m, estimate));
  const pool = fitting.length > 0 ? fitting : open;
  return pool.length > 0 ? strategy.select(pool) : undefined;
}
