/**
 * Timer helpers. `setTimeout` holds at most 2^31 − 1 ms (about 24.8 days): a longer delay fires
 * at once (Node warns and uses 1 ms), so a request with a deadline 25 days ahead would expire on
 * arrival. Every timer built from a peer's deadline goes through {@link timerDelay}.
 */

/** The longest delay `setTimeout` honours. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * A delay `setTimeout` honours: negative or NaN becomes 0, anything past the limit is clamped to
 * it. A deadline further away than the limit then fires early, at 24.8 days: no request lives
 * that long, and each hop re-checks the absolute deadline before acting on the timer.
 */
export function timerDelay(ms: number): number {
  if (!(ms > 0)) return 0;
  return Math.min(ms, MAX_TIMER_DELAY_MS);
}
