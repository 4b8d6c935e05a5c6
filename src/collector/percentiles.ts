/**
 * Latency percentiles for the collector's per-version stats. Nearest rank (the smallest sample
 * with at least p% of the samples at or below it) rather than interpolation: every value reported
 * is one a request really took, and the same samples give the same numbers in any order, so
 * stats are reproducible from the records alone.
 */

/** The percentiles each latency summary reports, in percent. */
export const SUMMARY_PERCENTILES = [50, 90, 99] as const;

/** A latency summary in milliseconds; the percentiles are null when there is no sample. */
export interface LatencySummary {
  p50: number | null;
  p90: number | null;
  p99: number | null;
  /** How many samples the percentiles are taken over. */
  count: number;
}

/**
 * The nearest-rank `percent`-th percentile (an integer in 1..100) of samples sorted ascending;
 * null for no sample. Computed in integers (`ceil(percent × n / 100)`) so that no float
 * rounding moves a rank (0.29 × 100 is 28.999… in floats).
 */
export function nearestRank(sortedAscending: readonly number[], percent: number): number | null {
  const n = sortedAscending.length;
  if (n === 0) return null;
  const rank = Math.min(n, Math.max(1, Math.ceil((percent * n) / 100)));
  return sortedAscending[rank - 1] ?? null;
}

/** The p50/p90/p99 summary of samples in any order. */
export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const [p50, p90, p99] = SUMMARY_PERCENTILES.map((p) => nearestRank(sorted, p));
  return { p50: p50 ?? null, p90: p90 ?? null, p99: p99 ?? null, count: sorted.length };
}
