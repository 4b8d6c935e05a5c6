/**
 * Where an actor's `/metrics` listens, apart from prometheus.ts so that option tables and `up`
 * can name it without loading prom-client.
 */

/** Where routers and replicas serve metrics: loopback unless told otherwise (`--metrics-host`). */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/** `http://host:port/metrics`, with an IPv6 address in brackets. */
export function metricsUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`;
}
