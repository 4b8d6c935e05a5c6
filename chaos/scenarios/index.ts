/** Every scenario, in the order `npm run chaos` runs them. Add new ones here. */
import { killReplica } from './kill-replica.ts';
import { killRouter } from './kill-router.ts';
import { mixOf } from './mix.ts';
import type { Scenario } from './scenario.ts';
import { stopReplica } from './stop-replica.ts';

/** The scenarios the seeded mix draws from: shared topology, no error allowed, healable. */
const MIXABLE: readonly Scenario[] = [killReplica, stopReplica, killRouter];

export const SCENARIOS: readonly Scenario[] = [killReplica, stopReplica, killRouter, mixOf(MIXABLE)];
