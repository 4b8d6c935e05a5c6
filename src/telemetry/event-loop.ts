/**
 * Event-loop delay of this process, for every actor's `/metrics`. One `monitorEventLoopDelay`
 * histogram per process, started on first use (its libuv timer is unref'd, so it never keeps a
 * process alive); a read takes its p99 and resets it, so the gauge covers one scrape interval.
 * Actors sharing a process (tests) share the histogram, and their scrapes reset each other.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** Sampling resolution of the histogram, in milliseconds. */
const EVENT_LOOP_RESOLUTION_MS = 20;

let histogram: IntervalHistogram | undefined;

/** Starts sampling (idempotent); call when an actor starts so the first scrape has data. */
export function startEventLoopMonitor(): void {
  if (histogram !== undefined) return;
  histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  histogram.enable();
}

/** p99 event-loop delay since the previous read, in seconds; resets the histogram. */
export function eventLoopDelaySeconds(): number {
  startEventLoopMonitor();
  const h = histogram as IntervalHistogram;
  const p99Ns = h.count === 0 ? 0 : h.percentile(99);
  h.reset();
  return p99Ns / 1e9;
}
