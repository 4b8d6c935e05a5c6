/** Reading an actor's Prometheus endpoint in tests: one series' value, and waiting for it. */
import { waitFor } from './cluster.ts';

/** How long one scrape may take before it counts as no answer. */
const SCRAPE_TIMEOUT_MS = 5_000;

/** The value of `series` (name and labels exactly as printed) at `url`; undefined when absent. */
export async function scrape(url: string, series: string): Promise<number | undefined> {
  let text: string;
  try {
    // Bounded: one scrape that never answers must not hang a wait that polls.
    text = await (await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) })).text();
  } catch (err) {
    if (err instanceof DOMException && err.name === 'TimeoutError') return undefined;
    throw err;
  }
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/**
 * Waits until a router's membership table counts `n` alive replicas: the event a membership
 * change produces, instead of a sleep sized to the heartbeat timeouts.
 */
export async function waitForAliveReplicas(
  metricsUrl: string,
  routerId: string,
  n: number,
  timeoutMs = 20_000,
): Promise<void> {
  const series = `switchyard_replicas{state="alive",router="${routerId}"}`;
  await waitFor(
    `${n} alive replica(s) at router ${routerId}`,
    async () => (await scrape(metricsUrl, series)) === n,
    timeoutMs,
  );
}
