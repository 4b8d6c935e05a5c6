/**
 * What a driving collector exports about rollouts: where each is, and the evidence of its last
 * look, check by check. Labels are model ids, check names and fixed words: bounded.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { ROLLOUT_STATES, type RolloutDecision, type RolloutRecord } from './types.ts';

const VERDICT_VALUE = { pass: 1, inconclusive: 0, fail: -1 } as const;

export class RolloutMetrics {
  private readonly weight: Gauge;
  private readonly state: Gauge;
  private readonly step: Gauge;
  private readonly decisions: Counter;
  private readonly verdict: Gauge;
  private readonly samples: Gauge;
  private readonly worseBy: Gauge;
  private readonly threshold: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.weight = new Gauge({
      name: 'switchyard_rollout_weight_percent',
      help: "Percent of new requests the model's rollout sends to its canary",
      labelNames: ['model'],
      registers,
    });
    this.state = new Gauge({
      name: 'switchyard_rollout_state',
      help: "1 for the state the model's last rollout is in, 0 for the others",
      labelNames: ['model', 'state'],
      registers,
    });
    this.step = new Gauge({
      name: 'switchyard_rollout_step',
      help: 'Index of the running step (0 is the first)',
      labelNames: ['model'],
      registers,
    });
    this.decisions = new Counter({
      name: 'switchyard_rollout_decisions_total',
      help: 'Looks at the evidence this collector recorded, by verdict and the action taken',
      labelNames: ['model', 'verdict', 'action'],
      registers,
    });
    this.verdict = new Gauge({
      name: 'switchyard_rollout_check_verdict',
      help: 'Last look, per check: 1 pass, 0 inconclusive, -1 fail',
      labelNames: ['model', 'check'],
      registers,
    });
    this.samples = new Gauge({
      name: 'switchyard_rollout_check_samples',
      help: 'Last look, per check and arm: requests with a value',
      labelNames: ['model', 'check', 'arm'],
      registers,
    });
    this.worseBy = new Gauge({
      name: 'switchyard_rollout_check_worse_by',
      help: "Last look: how much worse the canary is (estimate and one-sided bounds), in the check's unit",
      labelNames: ['model', 'check', 'bound'],
      registers,
    });
    this.threshold = new Gauge({
      name: 'switchyard_rollout_check_threshold',
      help: "Last look: the margin in the check's unit",
      labelNames: ['model', 'check'],
      registers,
    });
  }

  /** A record as it is now (any collector's write, seen through the watch). */
  observe(record: RolloutRecord): void {
    const model = record.model;
    this.weight.set({ model }, record.weight);
    this.step.set({ model }, record.step);
    for (const state of ROLLOUT_STATES) this.state.set({ model, state }, state === record.state ? 1 : 0);
  }

  /** A decision this collector recorded. */
  decided(model: string, decision: RolloutDecision): void {
    this.decisions.inc({ model, verdict: decision.verdict, action: decision.action });
    for (const c of decision.checks) {
      const check = c.check;
      this.verdict.set({ model, check }, VERDICT_VALUE[c.verdict]);
      this.samples.set({ model, check, arm: 'canary' }, c.canary.n);
      this.samples.set({ model, check, arm: 'stable' }, c.stable.n);
      this.worseBy.set({ model, check, bound: 'estimate' }, finite(c.worse_by));
      this.worseBy.set({ model, check, bound: 'lower' }, finite(c.worse_by_lower));
      this.worseBy.set({ model, check, bound: 'upper' }, finite(c.worse_by_upper));
      this.threshold.set({ model, check }, finite(c.threshold));
    }
  }
}

/** Prometheus takes ±Inf, but a bound of too few samples reads better as NaN ("no value"). */
function finite(n: number): number {
  return Number.isFinite(n) ? n : Number.NaN;
}
