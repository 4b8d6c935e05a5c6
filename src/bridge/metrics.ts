/**
 * The bridge's Prometheus metrics, in one module so the routes only call `count*`. Label values
 * are bounded: routes are the route table's paths or `unmatched`, never a raw URL. Request-level
 * latency and token metrics are the router's (every request passes one); the bridge adds what
 * only it sees: HTTP statuses, the response cache, rate limiting.
 */
import { actorRegistry, Counter, scraped, type Registry } from '../telemetry/prometheus.ts';

/** Outcome of one cache lookup. */
export type CacheOutcome = 'hit' | 'miss' | 'error';

/** Gauges read at scrape time. */
export interface BridgeGauges {
  inFlight(): number;
  liveReplicas(): number;
}

/** One bridge's registry and its counters. */
export class BridgeMetrics {
  readonly registry: Registry;
  private readonly requests: Counter<'route' | 'status'>;
  private readonly cache: Counter<'result'>;
  private readonly rateLimited: Counter;

  constructor(id: string, gauges: BridgeGauges) {
    const registry = actorRegistry({ bridge: id });
    const registers = [registry];
    this.registry = registry;
    this.requests = new Counter({
      name: 'switchyard_bridge_requests_total',
      help: 'HTTP requests answered, by route and status (499: the client went away).',
      labelNames: ['route', 'status'],
      registers,
    });
    this.cache = new Counter({
      name: 'switchyard_cache_requests_total',
      help: 'Response cache lookups, one per choice, by result.',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['hit', 'miss', 'error'] as const) this.cache.inc({ result }, 0);
    this.rateLimited = new Counter({
      name: 'switchyard_rate_limited_total',
      help: 'Requests refused because their API key was over its rate limit.',
      registers,
    });
    scraped(registry, 'gauge', 'switchyard_bridge_in_flight', 'HTTP requests being served.', () =>
      gauges.inFlight(),
    );
    scraped(registry, 'gauge', 'switchyard_bridge_live_replicas', 'Replicas this bridge sees as live.', () =>
      gauges.liveReplicas(),
    );
  }

  /** Counts one answered request (499 for a client that went away). */
  countRequest(route: string, status: number): void {
    this.requests.inc({ route, status: String(status) });
  }

  /** Counts one cache lookup of one choice. */
  countCache(outcome: CacheOutcome): void {
    this.cache.inc({ result: outcome });
  }

  /** Counts one request refused by the rate limiter. */
  countRateLimited(): void {
    this.rateLimited.inc();
  }

  /** Prometheus text. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
