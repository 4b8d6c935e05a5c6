/**
 * The routers' own verdicts, read from their /metrics: how often they declared a replica dead and
 * why they failed attempts over. A scenario compares readings before and after its fault, so an
 * invariant such as "never declared dead while its steps move" is the router's word, not a guess.
 */

/** How long one scrape may take (a router on a busy 2-core machine still answers in far less). */
const SCRAPE_TIMEOUT_MS = 5_000;

/** What a scenario reads from one router's metrics. */
export interface RouterReading {
  /** `switchyard_replicas_declared_dead_total`. */
  declaredDead: number;
  /** `switchyard_failovers_total` by reason. */
  failovers: Record<string, number>;
}

/** Thrown when a router's /metrics cannot be read or lacks a metric the scenario needs. */
export class RouterMetricsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RouterMetricsError';
  }
}

/** One series of a Prometheus text exposition. */
export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Scrapes one actor's /metrics into its series. */
export async function readSeries(url: string): Promise<Series[]> {
  let text: string;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
    if (!res.ok) throw new RouterMetricsError(`${url} answered HTTP ${res.status}`);
    text = await res.text();
  } catch (err) {
    if (err instanceof RouterMetricsError) throw err;
    throw new RouterMetricsError(`cannot scrape ${url}: ${err instanceof Error ? err.message : String(err)}`);
  }
  // Every series carries the actor's default labels ({router="rt1"}), in no fixed order.
  return [...text.matchAll(/^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/gm)].map((m) => ({
    name: m[1]!,
    labels: Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!])),
    value: Number(m[3]),
  }));
}

/** Scrapes one router's /metrics. */
export async function readRouter(url: string): Promise<RouterReading> {
  const series = await readSeries(url);
  const dead = series.find((s) => s.name === 'switchyard_replicas_declared_dead_total');
  if (dead === undefined)
    throw new RouterMetricsError(`${url} has no switchyard_replicas_declared_dead_total`);
  const failovers: Record<string, number> = {};
  for (const s of series)
    if (s.name === 'switchyard_failovers_total' && s.labels['reason'] !== undefined)
      failovers[s.labels['reason']] = s.value;
  return { declaredDead: dead.value, failovers };
}

/** Scrapes every router; keyed by router id. */
export async function readRouters(urls: ReadonlyMap<string, string>): Promise<Map<string, RouterReading>> {
  const entries = await Promise.all([...urls].map(async ([id, url]) => [id, await readRouter(url)] as const));
  return new Map(entries);
}

/** Replicas declared dead between two readings, over every router. */
export function deadBetween(
  before: ReadonlyMap<string, RouterReading>,
  after: ReadonlyMap<string, RouterReading>,
): number {
  let n = 0;
  for (const [id, a] of after) n += a.declaredDead - (before.get(id)?.declaredDead ?? 0);
  return n;
}

/** Failovers between two readings, over every router, by reason ("none" when there were none). */
export function failoversBetween(
  before: ReadonlyMap<string, RouterReading>,
  after: ReadonlyMap<string, RouterReading>,
): string {
  const sum = new Map<string, number>();
  for (const [id, a] of after)
    for (const [reason, n] of Object.entries(a.failovers)) {
      const d = n - (before.get(id)?.failovers[reason] ?? 0);
      if (d > 0) sum.set(reason, (sum.get(reason) ?? 0) + d);
    }
  return [...sum].map(([r, n]) => `${r}: ${n}`).join(', ') || 'none';
}
