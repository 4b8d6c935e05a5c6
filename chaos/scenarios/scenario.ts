/**
 * What a chaos scenario is: a name, the invariant it checks, the errors it allows, and a fault
 * injected into a topology while load runs. Scenarios are listed in `scenarios/index.ts`.
 */
import type { FaultRecord, InvariantCheck } from '../history/types.ts';
import type { LoadClient } from '../load.ts';
import type { Profile } from '../profile.ts';
import type { Topology, TopologyShape } from '../topology.ts';

/** What a scenario gets besides the topology. */
export interface ScenarioContext {
  /** A seeded random number in [0, 1), for picking targets and timings. */
  random(): number;
  /** The profile the run uses (durations, load, timeouts). */
  profile: Profile;
  /** The running load (wait for `nextStream()` to land a fault mid-stream). */
  load: LoadClient;
  /** Records a fault and returns the record; fill `verified` once it is checked, `endedAt` at its end. */
  fault(record: FaultRecord): FaultRecord;
  /**
   * Records an invariant the history alone cannot show (a refusal by nats-server, flat RSS, a
   * replica never declared dead). A failed check fails the scenario.
   */
  check(check: InvariantCheck): void;
}

export interface Scenario {
  readonly name: string;
  /** The invariant it checks, in one or two sentences (for the report and chaos/README.md). */
  readonly invariant: string;
  /** Error codes the invariant allows (none: every request completes exactly). */
  readonly allowedErrors: readonly string[];
  /** Whether `--profile short` (inside `npm test`) runs it. @default false */
  readonly short?: boolean;
  /**
   * A control: the scenario plants a fault that must NOT verify (a mistargeted signal), and it
   * passes exactly when the checker catches it (an unverified fault, nothing else wrong); if
   * the checker finds nothing, the run fails. @default false
   */
  readonly expectCaught?: boolean;
  /**
   * The scenario kills routers, restarts NATS or partitions it, so capture may lose events: a
   * finished request with no record passes the capture check when its cause is named (a killed
   * router, a drop the routers counted). Otherwise every one is recorded exactly once. @default false
   */
  readonly disturbsCapture?: boolean;
  /** Shape changes the scenario needs over the profile's. */
  readonly shape?: Partial<TopologyShape>;
  /** Why it cannot run on this machine (missing privileges), or undefined when it can. */
  skip?(): string | undefined;
  run(topology: Topology, ctx: ScenarioContext): Promise<void>;
}
