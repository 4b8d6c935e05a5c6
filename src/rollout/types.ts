/**
 * Canary rollouts: the shapes every part shares. A rollout is one KV value per model id in
 * {@link ROLLOUTS_BUCKET} (src/cluster/subjects.ts): operators write it with `switchyard rollout`,
 * the collector that drives it advances, promotes or rolls it back with compare-and-set, and
 * routers watch it (read only) to send `weight` percent of new requests to the canary version.
 *
 * Stored as JSON with snake_case fields like every other wire message; docs/protocol.md,
 * "Rollouts", is the reference.
 */

/** Version of the stored rollout format. */
export const ROLLOUT_FORMAT_VERSION = 1;

/**
 * Where a rollout is. `starting`: written by `rollout start`, waiting for a collector to swap
 * the canary replicas (weight 0). `running`: the canary takes `weight` percent. `promoting`,
 * `aborting`: an operator asked (`rollout promote|abort`), the collector carries it out.
 * `held`: a step stayed inconclusive for the policy's `max_looks`: the canary keeps its weight
 * and an operator promotes or aborts. `rolling_back`: a check failed, weight is 0 already,
 * canary replicas are being swapped back. The rest are final.
 */
export const ROLLOUT_STATES = [
  'starting',
  'running',
  'held',
  'promoting',
  'aborting',
  'rolling_back',
  'promoted',
  'rolled_back',
  'aborted',
] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

/** States after which a new rollout of the model may start. */
export const FINAL_ROLLOUT_STATES: ReadonlySet<RolloutState> = new Set([
  'promoted',
  'rolled_back',
  'aborted',
]);

/** The arm a request was placed on. */
export type RolloutArm = 'stable' | 'canary';

/** What a router records of a request's rollout (the completion event's `rollout` field). */
export interface RequestRollout {
  /** The rollout's id. */
  id: string;
  arm: RolloutArm;
}

/** The checks a policy can hold. */
export const CHECK_NAMES = ['error_rate', 'ttft', 'tpot', 'rating', 'thumbs_up'] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

/** Settings of one check. */
export interface CheckPolicy {
  /**
   * How much worse the canary may be and still pass. error_rate and thumbs_up: an absolute
   * difference of proportions (0.02 = 2 points); rating: an absolute difference of mean ratings
   * on [0, 1]; ttft and tpot: relative to stable's mean (0.25 = 25% slower).
   */
  margin: number;
  /** Requests (with a value for this check) each arm needs before the check can decide. */
  min_samples: number;
  /** One-sided confidence level of the check's bounds, in (0.5, 1). */
  confidence: number;
  /**
   * rating and thumbs_up only: pass only when the canary is shown better than stable (its lower
   * bound of canary − stable above 0); it still fails when shown worse beyond the margin.
   */
  require_better?: boolean;
}

/** A rollout policy: which checks decide and how steps are paced. */
export interface RolloutPolicy {
  /** The checks that decide each step; a check left out is not judged. */
  checks: Partial<Record<CheckName, CheckPolicy>>;
  /** How often the driving collector looks at the evidence. */
  interval_ms: number;
  /** A step lasts at least this long before it can advance. */
  min_step_ms: number;
  /**
   * Looks per step: after this many inconclusive looks the step is decided by `on_inconclusive`.
   * Bounding looks bounds how often a test can err (each look is one more chance).
   */
  max_looks: number;
  /** What an inconclusive step becomes after `max_looks`: held (an operator decides) or rolled back. */
  on_inconclusive: 'hold' | 'rollback';
}

/** The statistics of one arm for one check. */
export interface ArmStats {
  /** Requests with a value for this check. */
  n: number;
  /** Mean (a proportion for error_rate and thumbs_up). */
  mean: number;
  /** Sample standard deviation (0 for fewer than 2). */
  sd: number;
}

export type Verdict = 'pass' | 'fail' | 'inconclusive';

/** One check's evidence and verdict. */
export interface CheckResult {
  check: CheckName;
  test: 'non_inferiority' | 'superiority';
  verdict: Verdict;
  canary: ArmStats;
  stable: ArmStats;
  /**
   * The estimate and its two one-sided bounds (at `confidence`) of how much worse the canary
   * is: canary − stable for error_rate, ttft and tpot, stable − canary for rating and thumbs_up
   * (positive is worse, in the check's unit; ttft and tpot in milliseconds).
   */
  worse_by: number;
  worse_by_lower: number;
  worse_by_upper: number;
  /** The margin in the check's unit (ttft and tpot: policy margin × stable mean). */
  threshold: number;
  confidence: number;
  min_samples: number;
  /** One line a person reads. */
  reason: string;
}

/** What a look decided. */
export type RolloutAction = 'wait' | 'advance' | 'promote' | 'rollback' | 'hold' | 'abort';

/** One look at the evidence (or an operator's command), as recorded. */
export interface RolloutDecision {
  at: string;
  /** Index into steps, and its weight, when it was decided. */
  step: number;
  weight: number;
  /** This step's look number (1-based); 0 for an operator's command. */
  look: number;
  /** The window both arms were measured on. */
  window: { from: string; to: string };
  verdict: Verdict;
  action: RolloutAction;
  checks: CheckResult[];
  /** Who decided: a collector id, or an operator (`user@host`). */
  by: string;
  reason: string;
}

/** One rollout, as stored under its model id. */
export interface RolloutRecord {
  v: typeof ROLLOUT_FORMAT_VERSION;
  /** Unique per rollout: requests and decisions name it. */
  id: string;
  model: string;
  /** The version the alias pointed at when the rollout started. */
  stable: string;
  canary: string;
  /** The alias promotion moves (and a rollback restores). */
  alias: string;
  /** Canary weights in percent, ascending; the last is 100 (promotion, not judged). */
  steps: number[];
  /** Index into steps of the step running now. */
  step: number;
  /** Percent of new requests routers send to the canary now (0 when not running). */
  weight: number;
  state: RolloutState;
  /** Fewest replicas that serve the canary; more are swapped when a step's weight needs them. */
  canary_replicas_min: number;
  /** The replicas the driver swapped to the canary (swapped back on rollback). */
  canary_replicas: string[];
  policy: RolloutPolicy;
  /** Who started it. */
  by: string;
  started_at: string;
  step_started_at: string;
  updated_at: string;
  /** The collector driving it (the last to write a decision). */
  driver?: string;
  /** Why it is where it is, one line. */
  reason: string;
  /** The most recent decisions, oldest first (bounded: see MAX_DECISIONS). */
  decisions: RolloutDecision[];
}

/** Decisions one record keeps (older ones live on as span events and logs). */
export const MAX_DECISIONS = 48;
