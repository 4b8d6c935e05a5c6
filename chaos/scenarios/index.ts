/** Every scenario, in the order `npm run chaos` runs them. Add new ones here. */
import { cpuStarve } from './cpu-starve.ts';
import { engineStall } from './engine-stall.ts';
import { failSteps } from './fail-steps.ts';
import { killReplica } from './kill-replica.ts';
import { killRouter } from './kill-router.ts';
import type { Scenario } from './scenario.ts';
import { mistargetedControl } from './mistargeted-control.ts';
import { rollingSigterm } from './rolling-sigterm.ts';
import { stopReplica } from './stop-replica.ts';

export const SCENARIOS: readonly Scenario[] = [
  killReplica,
  stopReplica,
  killRouter,
  rollingSigterm,
  engineStall,
  failSteps,
  cpuStarve,
  mistargetedControl,
];
