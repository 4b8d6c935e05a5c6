/**
 * The canary judge: a pure function from the collected records of one time window to a verdict
 * per check and overall. The collector that drives a rollout calls it at every look; the
 * statistics live in stats.ts, what a record contributes to each check in values.ts.
 *
 * Each check is one-sided. Non-inferiority: pass only when the canary is shown no worse than
 * stable by more than the margin (the upper bound of `worse_by` below the threshold), fail only
 * when it is shown worse beyond it (the lower bound above), otherwise inconclusive, and always
 * inconclusive while either arm has fewer than `min_samples` values. With `require_better`
 * (superiority) a pass needs the canary shown better (the upper bound of `worse_by` below 0);
 * the fail rule is non-inferiority's. A missing or idle arm therefore never passes anything.
 */
import type { CollectedRecord } from '../collector/record.ts';
import { armStats, meanDifferenceBounds, proportionDifferenceBounds, type Bounds } from './stats.ts';
import type { ArmStats, CheckName, CheckPolicy, CheckResult, RolloutPolicy, Verdict } from './types.ts';
import { CHECK_NAMES } from './types.ts';
import { armIn, checkValue, type RolloutWindow } from './values.ts';

/**
 * Fewest values per arm a check decides on whatever the policy says: a mean of one value has
 * no standard deviation, and a bound built on sd 0 would claim certainty.
 */
export const MIN_DECIDING_SAMPLES = 2;

/** What one look decided. */
export interface Judgement {
  verdict: Verdict;
  /** One result per check in the policy, in {@link CHECK_NAMES} order. */
  checks: CheckResult[];
  /** Requests of the rollout in the window, per arm (whether or not they had values). */
  samples: { stable: number; canary: number };
}

/**
 * Judges canary against stable over the records of `rollout` whose requests started in
 * [from, to] (epoch ms). Fail if any check fails; pass only if every check passes (a policy
 * without checks is inconclusive, never a pass by default); inconclusive otherwise.
 */
export function judge(
  records: Iterable<CollectedRecord>,
  rollout: RolloutWindow,
  policy: RolloutPolicy,
): Judgement {
  const checks = CHECK_NAMES.filter((name) => policy.checks[name] !== undefined);
  const values = new Map(checks.map((name) => [name, { stable: [] as number[], canary: [] as number[] }]));
  const samples = { stable: 0, canary: 0 };
  for (const record of records) {
    const arm = armIn(record, rollout);
    if (arm === undefined) continue;
    samples[arm] += 1;
    for (const name of checks) {
      const value = checkValue(name, record);
      if (value !== undefined && Number.isFinite(value)) values.get(name)?.[arm].push(value);
    }
  }
  const results = checks.map((name) => {
    const arms = values.get(name) ?? { stable: [], canary: [] };
    // The filter above keeps only checks the policy holds.
    return judgeCheck(name, policy.checks[name] as CheckPolicy, armStats(arms.canary), armStats(arms.stable));
  });
  return { verdict: overallVerdict(results), checks: results, samples };
}

/** Fail if any fails; pass only if there is at least one result and all pass. */
export function overallVerdict(results: readonly CheckResult[]): Verdict {
  if (results.some((r) => r.verdict === 'fail')) return 'fail';
  if (results.length > 0 && results.every((r) => r.verdict === 'pass')) return 'pass';
  return 'inconclusive';
}

/** How a check's difference is bounded and worded. */
type Kind = 'proportion' | 'mean' | 'relative_mean';

const KIND: Readonly<Record<CheckName, Kind>> = {
  error_rate: 'proportion',
  thumbs_up: 'proportion',
  rating: 'mean',
  ttft: 'relative_mean',
  tpot: 'relative_mean',
};

/** Checks where a higher value is better (worse_by is stable − canary). */
const HIGHER_IS_BETTER: ReadonlySet<CheckName> = new Set<CheckName>(['rating', 'thumbs_up']);

/**
 * Bounds of `worse_by` (positive: the canary is worse) and the threshold, for one check.
 *
 * For ttft and tpot the margin is relative to stable's mean, which is itself estimated. The test
 * is of D = canary − (1 + m)·stable < 0 (canary at most m slower), with the standard error of
 * that combination (stats.ts, k = 1 + m); the bounds reported are D's shifted by the observed
 * threshold m·stable, so `worse_by_upper < threshold` holds exactly when D's upper bound is
 * below 0. They are wider than bounds of canary − stable alone by the (1 + m)² weight on
 * stable's variance: the price of not treating stable's mean as exact.
 */
function boundsOf(
  check: CheckName,
  policy: CheckPolicy,
  canary: ArmStats,
  stable: ArmStats,
): { bounds: Bounds | null; threshold: number } {
  const [worse, better] = HIGHER_IS_BETTER.has(check) ? [stable, canary] : [canary, stable];
  switch (KIND[check]) {
    case 'proportion':
      return {
        bounds: proportionDifferenceBounds(
          Math.round(worse.mean * worse.n),
          worse.n,
          Math.round(better.mean * better.n),
          better.n,
          policy.confidence,
        ),
        threshold: policy.margin,
      };
    case 'mean':
      return { bounds: meanDifferenceBounds(worse, better, policy.confidence), threshold: policy.margin };
    case 'relative_mean': {
      const threshold = policy.margin * stable.mean;
      const d = meanDifferenceBounds(canary, stable, policy.confidence, 1 + policy.margin);
      const bounds =
        d === null
          ? null
          : { estimate: d.estimate + threshold, lower: d.lower + threshold, upper: d.upper + threshold };
      return { bounds, threshold };
    }
  }
}

/** One check's verdict and evidence. */
export function judgeCheck(
  check: CheckName,
  policy: CheckPolicy,
  canary: ArmStats,
  stable: ArmStats,
): CheckResult {
  const superiority = policy.require_better === true;
  const { bounds, threshold } = boundsOf(check, policy, canary, stable);
  const few = Math.max(policy.min_samples, MIN_DECIDING_SAMPLES);
  const short = [canary.n < few ? 'canary' : undefined, stable.n < few ? 'stable' : undefined].filter(
    (arm) => arm !== undefined,
  );
  let verdict: Verdict = 'inconclusive';
  if (short.length === 0 && bounds !== null) {
    if (bounds.lower > threshold) verdict = 'fail';
    else if (bounds.upper < (superiority ? 0 : threshold)) verdict = 'pass';
  }
  const result: CheckResult = {
    check,
    test: superiority ? 'superiority' : 'non_inferiority',
    verdict,
    canary,
    stable,
    worse_by: bounds?.estimate ?? 0,
    worse_by_lower: bounds?.lower ?? 0,
    worse_by_upper: bounds?.upper ?? 0,
    threshold,
    confidence: policy.confidence,
    min_samples: policy.min_samples,
    reason: '',
  };
  result.reason = reasonOf(result, policy, short, bounds !== null);
  return result;
}

// ——— Reasons: one line a person reads, in the check's own unit ———

interface Wording {
  label: string;
  /** A mean of one arm. */
  level: (mean: number) => string;
  /** A difference (non-negative) in the check's unit, for stable mean `base`. */
  amount: (value: number, base: number) => string;
  worse: string;
  better: string;
  margin: (margin: number) => string;
}

const fixed = (value: number, digits: number): string => String(Number(value.toFixed(digits)));
const percent = (value: number): string => `${fixed(value * 100, 1)}%`;
const points = (value: number): string => `${fixed(value * 100, 1)} points`;
/** A latency difference as a percent of stable's mean (in ms when stable's mean is 0). */
const relative = (value: number, base: number): string =>
  base > 0 ? `${fixed((value / base) * 100, 1)}%` : `${fixed(value, 1)} ms`;
const ms = (value: number): string => `${fixed(value, 1)} ms`;

const WORDING: Readonly<Record<CheckName, Wording>> = {
  error_rate: {
    label: 'error rate',
    level: percent,
    amount: points,
    worse: 'worse',
    better: 'better',
    margin: points,
  },
  thumbs_up: {
    label: 'thumbs-up rate',
    level: percent,
    amount: points,
    worse: 'worse',
    better: 'better',
    margin: points,
  },
  rating: {
    label: 'rating',
    level: (v) => fixed(v, 3),
    amount: (v) => fixed(v, 3),
    worse: 'worse',
    better: 'better',
    margin: (v) => fixed(v, 3),
  },
  ttft: { label: 'ttft', level: ms, amount: relative, worse: 'slower', better: 'faster', margin: percent },
  tpot: { label: 'tpot', level: ms, amount: relative, worse: 'slower', better: 'faster', margin: percent },
};

function reasonOf(r: CheckResult, policy: CheckPolicy, short: string[], estimable: boolean): string {
  const w = WORDING[r.check];
  const base = r.stable.mean;
  const signed = (v: number): string => `${w.amount(Math.abs(v), base)} ${v >= 0 ? w.worse : w.better}`;
  const head = `canary ${w.label} ${w.level(r.canary.mean)} vs stable ${w.level(r.stable.mean)} (n ${r.canary.n}/${r.stable.n})`;
  const tail = `margin ${w.margin(policy.margin)}${r.test === 'superiority' ? ', must be better' : ''}: ${r.verdict}`;
  if (short.length > 0) {
    const few = Math.max(policy.min_samples, MIN_DECIDING_SAMPLES);
    return `${head}: fewer than ${few} values on ${short.length === 2 ? 'both arms' : `the ${short[0]}`}, ${tail}`;
  }
  if (!estimable) return `${head}: no estimate, ${tail}`;
  const at = `at ${fixed(r.confidence * 100, 2)}%`;
  let evidence: string;
  if (r.verdict === 'fail') {
    evidence = `at least ${signed(r.worse_by_lower)}`;
  } else if (r.verdict === 'pass') {
    evidence = `at most ${signed(r.worse_by_upper)}`;
    if (r.worse_by_upper < 0) evidence = `at least ${w.amount(-r.worse_by_upper, base)} ${w.better}`;
  } else {
    evidence = `between ${signed(r.worse_by_lower)} and ${signed(r.worse_by_upper)}`;
  }
  return `${head}: ${evidence} ${at}, ${tail}`;
}

/** Upper bounds of the probability of a false verdict on equal arms (see {@link falseVerdictBound}). */
export interface FalseVerdictBound {
  /** A false fail at one look: the sum over the policy's checks of α = 1 − confidence. */
  perLook: number;
  /** A false fail over every check × max_looks × judged steps, capped at 1. */
  total: number;
  /**
   * A false pass at one look, which only a policy with `require_better` checks can give on equal
   * arms (a pass needs every check to pass, so the smallest α among them); 0 without one.
   */
  falsePassPerLook: number;
  /** A false pass over max_looks × judged steps, capped at 1. */
  falsePassTotal: number;
  explain: string;
}

/**
 * How likely a rollout of a candidate equal to stable is to be rolled back by chance: a union
 * (Bonferroni) bound, valid however the looks depend on each other (they share records), over
 * every check, every look of a step (`max_looks`) and every judged step. Each check's fail rule
 * errs on equal arms with probability at most α = 1 − confidence (one-sided; the normal
 * approximation makes α approximate, which the seeded Monte Carlo in test/rollout/judge.test.ts
 * checks). The bound is conservative: a fail needs the lower bound above the margin, and with a
 * margin above 0 equal arms sit a margin away from it, so their real per-look rate is far below
 * α; the looks of one step overlap, so they err together rather than independently; and a
 * rollout ends at its first verdict.
 *
 * A false pass needs no bound for non-inferiority: passing a candidate that is no worse than
 * the margin is what the policy asked for, and a truly better candidate passing is no error.
 * Nor does a truly worse candidate being rolled back. Only `require_better` makes a pass of
 * equal arms wrong: that is bounded separately ({@link FalseVerdictBound.falsePassTotal}).
 */
export function falseVerdictBound(policy: RolloutPolicy, judgedSteps: number): FalseVerdictBound {
  const alphas = CHECK_NAMES.flatMap((name) => {
    const check = policy.checks[name];
    return check === undefined
      ? []
      : [{ name, alpha: 1 - check.confidence, better: check.require_better === true }];
  });
  const perLook = alphas.reduce((sum, a) => sum + a.alpha, 0);
  const superiority = alphas.filter((a) => a.better).map((a) => a.alpha);
  const falsePassPerLook = superiority.length > 0 ? Math.min(...superiority) : 0;
  const looks = policy.max_looks * judgedSteps;
  const total = Math.min(1, perLook * looks);
  const falsePassTotal = Math.min(1, falsePassPerLook * looks);
  const g = (v: number): string => String(Number(v.toPrecision(3)));
  const each = alphas.map((a) => `${a.name} ${g(a.alpha)}`).join(' + ');
  let explain =
    alphas.length === 0
      ? 'no checks: equal arms never fail (nor pass) on evidence'
      : `P(false fail on equal arms) ≤ (${each}) per look × ${policy.max_looks} looks × ${judgedSteps} steps = ` +
        `${g(total)} (union bound; margins above 0 make it conservative)`;
  if (superiority.length > 0) {
    explain += `; P(false pass on equal arms, must be better) ≤ ${g(falsePassPerLook)} × ${looks} looks = ${g(falsePassTotal)}`;
  }
  return { perLook, total, falsePassPerLook, falsePassTotal, explain };
}
