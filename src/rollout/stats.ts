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
// (The coefficients are the published ones, written to the 17 digits a double keeps.)
// It needs no error function (Acklam's algorithm reaches this accuracy only with a refinement
// step through erfc, which JavaScript does not have), and its tails stay exact in relative terms
// because it works from min(p, 1 − p).
const SPLIT_CENTRAL = 0.425;
const SPLIT_TAIL = 5;
const CENTRAL_R = 0.180625;
const NEAR_TAIL_SHIFT = 1.6;
const FAR_TAIL_SHIFT = 5;

const A = [
  3.3871328727963665, 133.14166789178438, 1971.5909503065513, 13731.69376550946, 45921.95393154987,
  67265.7709270087, 33430.57558358813, 2509.0809287301227,
];
const B = [
  1, 42.31333070160091, 687.1870074920579, 5394.196021424751, 21213.794301586597, 39307.89580009271,
  28729.085735721943, 5226.495278852854,
];
const C = [
  1.4234371107496835, 4.630337846156546, 5.769497221460691, 3.6478483247632045, 1.2704582524523684,
  0.2417807251774506, 0.022723844989269184, 0.0007745450142783414,
];
const D = [
  1, 2.053191626637759, 1.6763848301838038, 0.6897673349851, 0.14810397642748008, 0.015198666563616457,
  0.0005475938084995345, 1.0507500716444169e-9,
];
const E = [
  6.657904643501103, 5.463784911164114, 1.7848265399172913, 0.29656057182850487, 0.026532189526576124,
  0.0012426609473880784, 0.000027115555687434876, 2.0103343992922881e-7,
];
const F = [
  1, 0.599832206555888, 0.1369298809227358, 0.014875361290850615, 0.0007868691311456133,
  0.000018463183175100548, 1.421511758316446e-7, 2.0442631033899397e-15,
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
