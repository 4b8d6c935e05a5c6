/** The one interface every routing strategy implements (moleculer's `src/strategies/` pattern). */
import type { Member } from '../membership.ts';

/** Picks one replica among candidates that are alive, ready, serve the model and are not full. */
export interface RoutingStrategy {
  readonly name: string;
  /** `candidates` is never empty. */
  select(candidates: readonly Member[]): Member;
}
