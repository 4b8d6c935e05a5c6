/** What a chaos scenario is: a name, and a fault injected into a topology while load runs. */
import type { FaultRecord } from '../history/types.ts';
import type { LoadClient } from '../load.ts';
import type { Topology } from '../topology.ts';

/** What a scenario gets besides the topology. */
export interface ScenarioContext {
  /** A seeded random number in [0, 1), for picking targets. */
  random(): number;
  /** The running load (wait for `nextStream()` to land a fault mid-stream). */
  load: LoadClient;
  /** Records a fault; the scenario fills `verified` once it checked the fault happened. */
  fault(record: FaultRecord): void;
}

export interface Scenario {
  readonly name: string;
  /** Error codes the invariant allows (none: every request completes exactly). */
  readonly allowedErrors: readonly string[];
  run(topology: Topology, ctx: ScenarioContext): Promise<void>;
}
