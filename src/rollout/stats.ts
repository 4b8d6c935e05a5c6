/**
 * The statistics a canary judge needs: the normal quantile, and one-sided bounds for a
 * difference of two proportions and of two means. Pure functions of counts and moments, so the
 * judge (src/rollout/judge.ts) is a pure function of the records too.
 *
 * Every bound here is a large-sample normal approximation. That is sound for what the judge does
 * with it because no check decides before each arm has `min_samples` values (policies use 20 or
 * more): the proportions get the Agresti–Caffo adjustment, which keeps its coverage near nominal
 * down to a handful of samples and with zero events, and at n ≥ 20 per arm the Student t
 * quantile Welch would use is within about 5% of the normal one at the confidence levels
 * policies hold (t₀.₉₅ with 19 degrees of freedom is 1.73 against z's 1.64; at 100 it is 1.66).
 */
import type { ArmStats } from './types.ts';

/** A value's estimate and its two one-sided bounds, each at the same confidence. */
export interface Bounds {
  estimate: number;
  /** The estimate is above this with the bounds' confidence (one-sided). */
  lower: number;
  /** The estimate is below this with the bounds' confidence (one-sided). */
  upper: number;
}

// Wichura's algorithm AS 241 (PPND16), Applied Statistics 37 (1988) 477–484: rational
// approximations in three regions of p, relative error about 1e-16 over the whole double range.
// It needs no error function (Acklam's algorithm reaches this accuracy only with a refinement
// step through erfc, which JavaScript does not have), and its tails stay exact in relative terms
// because it works from min(p, 1 − p).
const SPLIT_CENTRAL = 0.425;
const SPLIT_TAIL = 5;
const CENTRAL_R = 0.180625;
const NEAR_TAIL_SHIFT = 1.6;
const FAR_TAIL_SHIFT = 5;

const A = [
  3.387132872796366608, 133.14166789178437745, 1971.5909503065514427, 13731.693765509461125,
  45921.953931549871457, 67265.770927008700853, 33430.575583588128105, 2509.0809287301226727,
];
const B = [
  1, 42.313330701600911252, 687.1870074920579083, 5394.1960214247511077, 21213.794301586595867,
  39307.89580009271061, 28729.085735721942674, 5226.495278852854561,
];
const C = [
  1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055, 3.64784832476320460504,
  1.27045825245236838258, 0.24178072517745061177, 0.0227238449892691845833, 7.7454501427834140764e-4,
];
const D = [
  1, 2.05319162663775882187, 1.6763848301838038494, 0.68976733498510000455, 0.14810397642748007459,
  0.0151986665636164571966, 5.475938084995344946e-4, 1.05075007164441684324e-9,
];
const E = [
  6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358, 0.29656057182850489123,
  0.026532189526576123093, 0.0012426609473880784386, 2.71155556874348757815e-5, 2.01033439929228813265e-7,
];
const F = [
  1, 0.59983220655588793769, 0.13692988092273580531, 0.0148753612908506148525, 7.868691311456132591e-4,
  1.8463183175100546818e-5, 1.4215117583164458887e-7, 2.04426310338993978564e-15,
];

/** Horner's rule for coefficients in ascending order of power. */
function poly(coefficients: readonly number[], x: number): number {
  let sum = 0;
  for (let i = coefficients.length - 1; i >= 0; i--) sum = sum * x + (coefficients[i] ?? 0);
  return sum;
}

/**
 * The standard normal quantile Φ⁻¹(p): the z with P(Z ≤ z) = p. Accurate to about 1e-15
 * relative (tested to 1e-9 absolute against reference values for p in [1e-12, 1 − 1e-12]).
 * Throws a RangeError outside (0, 1).
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normal quantile: p must be in (0, 1), got ${p}`);
  const q = p - 0.5;
  if (Math.abs(q) <= SPLIT_CENTRAL) {
    const r = CENTRAL_R - q * q;
    return (q * poly(A, r)) / poly(B, r);
  }
  let r = Math.sqrt(-Math.log(q < 0 ? p : 1 - p));
  let z: number;
  if (r <= SPLIT_TAIL) {
    r -= NEAR_TAIL_SHIFT;
    z = poly(C, r) / poly(D, r);
  } else {
    r -= FAR_TAIL_SHIFT;
    z = poly(E, r) / poly(F, r);
  }
  return q < 0 ? -z : z;
}

/** The one-sided quantile of a confidence level: z with P(Z ≤ z) = confidence. */
function zOf(confidence: number): number {
  if (!(confidence > 0.5 && confidence < 1)) {
    throw new RangeError(`confidence must be in (0.5, 1), got ${confidence}`);
  }
  return normalQuantile(confidence);
}

/**
 * One-sided bounds (each at `confidence`) for p_a − p_b, the difference of two proportions with
 * `eventsA` of `nA` and `eventsB` of `nB`. Agresti–Caffo (2000): one event and one non-event are
 * added to each arm before the Wald interval is formed. Plain Wald has zero width when neither
 * arm saw an event (0 of 50 against 0 of 500 would "prove" the arms equal to the last decimal);
 * the adjusted interval stays wide with few events and its coverage is near nominal from small
 * samples up. The estimate is the observed difference, unadjusted (what a person reads).
 */
export function proportionDifferenceBounds(
  eventsA: number,
  nA: number,
  eventsB: number,
  nB: number,
  confidence: number,
): Bounds {
  const z = zOf(confidence);
  const pa = (eventsA + 1) / (nA + 2);
  const pb = (eventsB + 1) / (nB + 2);
  const se = Math.sqrt((pa * (1 - pa)) / (nA + 2) + (pb * (1 - pb)) / (nB + 2));
  const centre = pa - pb;
  const estimate = (nA > 0 ? eventsA / nA : 0) - (nB > 0 ? eventsB / nB : 0);
  return { estimate, lower: centre - z * se, upper: centre + z * se };
}

/**
 * One-sided bounds (each at `confidence`) for mean_a − k·mean_b, with Welch's standard error
 * √(sd_a²/n_a + k²·sd_b²/n_b) and the normal quantile (see the module comment for why the
 * normal quantile is enough). With k = 1 it is the difference of two means; the latency checks
 * use k = 1 + margin, so that "the canary is at most `margin` slower than stable" is a test of
 * mean_c − (1 + m)·mean_s < 0 whose error counts the uncertainty of stable's mean as well as the
 * canary's (a margin taken as m × stable's observed mean, as if exact, would not).
 *
 * Null when either arm has no values (nothing bounds its mean).
 */
export function meanDifferenceBounds(a: ArmStats, b: ArmStats, confidence: number, k = 1): Bounds | null {
  const z = zOf(confidence);
  if (a.n === 0 || b.n === 0) return null;
  const se = Math.sqrt((a.sd * a.sd) / a.n + (k * k * b.sd * b.sd) / b.n);
  const estimate = a.mean - k * b.mean;
  return { estimate, lower: estimate - z * se, upper: estimate + z * se };
}

/** Count, mean and sample standard deviation (0 below 2 values) of `values`. */
export function armStats(values: readonly number[]): ArmStats {
  const n = values.length;
  if (n === 0) return { n: 0, mean: 0, sd: 0 };
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / n;
  // Two passes: the sum of squared deviations from the mean, not Σx² − n·mean², which cancels
  // catastrophically for latencies with a large mean and a small spread.
  let squares = 0;
  for (const v of values) squares += (v - mean) * (v - mean);
  return { n, mean, sd: n > 1 ? Math.sqrt(squares / (n - 1)) : 0 };
}
