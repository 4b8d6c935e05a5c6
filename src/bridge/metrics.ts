/**
 * The bridge's counters and their Prometheus text exposition, kept in this one module so the
 * observability issue can replace it (with OpenTelemetry metrics) without touching the routes.
 * Label values are bounded: routes are the route table's paths or `unmatched`, never a raw URL.
 */

/** Outcome of one cache lookup. */
export type CacheOutcome = 'hit' | 'miss' | 'error';

/** Gauges read at scrape time. */
export interface BridgeGauges {
  inFlight: number;
  liveReplicas: number;
}

const PREFIX = 'switchyard_bridge';

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Counters of one bridge process. */
export class BridgeMetrics {
  private readonly requests = new Map<string, { route: string; status: number; count: number }>();
  private readonly cache: Record<CacheOutcome, number> = { hit: 0, miss: 0, error: 0 };

  /** Counts one answered request (499 for a client that went away). */
  countRequest(route: string, status: number): void {
    const key = `${route} ${status}`;
    const entry = this.requests.get(key);
    if (entry !== undefined) entry.count += 1;
    else this.requests.set(key, { route, status, count: 1 });
  }

  /** Counts one cache lookup of one choice. */
  countCache(outcome: CacheOutcome): void {
    this.cache[outcome] += 1;
  }

  /** Requests counted so far for `route` with `status` (tests read it). */
  requestCount(route: string, status: number): number {
    return this.requests.get(`${route} ${status}`)?.count ?? 0;
  }

  /** Cache lookups counted so far with `outcome`. */
  cacheCount(outcome: CacheOutcome): number {
    return this.cache[outcome];
  }

  /** Prometheus text format 0.0.4. */
  render(gauges: BridgeGauges): string {
    const lines: string[] = [
      `# HELP ${PREFIX}_requests_total HTTP requests answered, by route and status.`,
      `# TYPE ${PREFIX}_requests_total counter`,
    ];
    const sorted = [...this.requests.values()].sort((a, b) =>
      a.route === b.route ? a.status - b.status : a.route < b.route ? -1 : 1,
    );
    for (const { route, status, count } of sorted) {
      lines.push(`${PREFIX}_requests_total{route="${escapeLabel(route)}",status="${status}"} ${count}`);
    }
    lines.push(
      `# HELP ${PREFIX}_cache_lookups_total Response cache lookups, one per choice, by outcome.`,
      `# TYPE ${PREFIX}_cache_lookups_total counter`,
    );
    for (const outcome of ['hit', 'miss', 'error'] as const) {
      lines.push(`${PREFIX}_cache_lookups_total{outcome="${outcome}"} ${this.cache[outcome]}`);
    }
    lines.push(
      `# HELP ${PREFIX}_in_flight HTTP requests being served.`,
      `# TYPE ${PREFIX}_in_flight gauge`,
      `${PREFIX}_in_flight ${gauges.inFlight}`,
      `# HELP ${PREFIX}_live_replicas Replicas this bridge sees as live.`,
      `# TYPE ${PREFIX}_live_replicas gauge`,
      `${PREFIX}_live_replicas ${gauges.liveReplicas}`,
    );
    return `${lines.join('\n')}\n`;
  }
}
