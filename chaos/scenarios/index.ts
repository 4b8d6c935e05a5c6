/** Every scenario, in the order `npm run chaos` runs them. Add new ones here. */
import { killReplica } from './kill-replica.ts';
import { killRouter } from './kill-router.ts';
import { overload } from './overload.ts';
import type { Scenario } from './scenario.ts';
import { stopReplica } from './stop-replica.ts';

export const SCENARIOS: readonly Scenario[] = [killReplica, stopReplica, killRouter, overload];
