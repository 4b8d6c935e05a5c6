/** Every scenario, in the order `npm run chaos` runs them. Add new ones here. */
import { bridgeRestart } from './bridge-restart.ts';
import { canaryRollback } from './canary-rollback.ts';
import { cpuStarve } from './cpu-starve.ts';
import { engineStall } from './engine-stall.ts';
import { failSteps } from './fail-steps.ts';
import { hostile } from './hostile.ts';
import { hostileInsecure } from './hostile-insecure.ts';
import { hotSwap } from './hot-swap.ts';
import { killCollector } from './kill-collector.ts';
import { killReplica } from './kill-replica.ts';
import { killRouter } from './kill-router.ts';
import { mistargetedControl } from './mistargeted-control.ts';
import { mixOf } from './mix.ts';
import { natsRestart } from './nats-restart.ts';
import { overload } from './overload.ts';
import { partitionNode } from './partition-node.ts';
import { partitionRoutes } from './partition-routes.ts';
import { rollingSigterm } from './rolling-sigterm.ts';
import type { Scenario } from './scenario.ts';
import { slowLink } from './slow-link.ts';
import { stopReplica } from './stop-replica.ts';

/** The scenarios the seeded mix draws from: shared topology, no error allowed, healable. */
const MIXABLE: readonly Scenario[] = [
  killReplica,
  stopReplica,
  killRouter,
  natsRestart,
  bridgeRestart,
  engineStall,
  failSteps,
  killCollector,
];

export const SCENARIOS: readonly Scenario[] = [
  mistargetedControl,
  killReplica,
  stopReplica,
  killRouter,
  killCollector,
  rollingSigterm,
  hotSwap,
  canaryRollback,
  engineStall,
  failSteps,
  cpuStarve,
  bridgeRestart,
  natsRestart,
  partitionNode,
  partitionRoutes,
  slowLink,
  hostile,
  hostileInsecure,
  overload,
  mixOf(MIXABLE),
];
