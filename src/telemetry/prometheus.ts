/**
 * Prometheus metrics for every actor, with prom-client: the library the Node field scrapes with
 * (histograms with exact buckets, `collect()` callbacks for values read at scrape time, the text
 * format done right). OpenTelemetry's Prometheus exporter was the other choice; it would add a
 * metrics SDK whose views and temporality settings we do not need, for the same text.
 *
 * Each actor owns one {@link Registry} (tests run several actors in one process, so nothing is
 * registered globally), labelled with the actor's id, and serves it on `GET /metrics` at its
 * `--metrics-host`:`--metrics-port` (port 0 = off; the host is loopback unless a pod must be
 * scraped); the bridge serves its registry on its own HTTP port and host. Gauges of
 * existing state (queue depth, membership) are read at scrape time, so the decode step and the
 * routing decision do no work for them; histograms and counters are updated where things happen.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { StartupError } from '../errors/errors.ts';
import { eventLoopDelaySeconds } from './event-loop.ts';
import { DEFAULT_METRICS_HOST, metricsUrl } from './metrics-address.ts';

export { Counter, Gauge, Histogram, Registry };

/** Buckets of request durations, in seconds (a tiny model on CPU to a long generation on a GPU). */
export const DURATION_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Buckets of time to first token, in seconds. */
export const TTFT_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Buckets of the time between two tokens of one stream, in seconds. */
export const ITL_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** The `Content-Type` of the text exposition format. */
export const METRICS_CONTENT_TYPE = new Registry().contentType;

/**
 * A registry for one actor: every series carries `labels` (e.g. `{ replica: 'r1' }`), and the
 * process's event-loop delay is in it (Invariant 4: inference must not starve the event loop).
 */
export function actorRegistry(labels: Readonly<Record<string, string>>): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ ...labels });
  new Gauge({
    name: 'switchyard_event_loop_delay_seconds',
    help: 'p99 event-loop delay of this process since the previous scrape.',
    registers: [registry],
    collect() {
      this.set(eventLoopDelaySeconds());
    },
  });
  return registry;
}

/**
 * A gauge, or a counter mirrored from a count the actor keeps anyway, whose value `read` gives
 * at scrape time (no work where the value changes).
 */
export function scraped(
  registry: Registry,
  kind: 'gauge' | 'counter',
  name: string,
  help: string,
  read: () => number,
): void {
  const registers = [registry];
  if (kind === 'gauge') {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  } else {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The address it listens on, as the socket reports it (e.g. `127.0.0.1`, `0.0.0.0`, `::`). */
  readonly host: string;
  readonly port: number;
  /** `http://host:port/metrics`, for logs and `up`'s summary. */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `GET /metrics` on `host`:`port` (port 0 = a free port) from `registry`. */
export async function serveMetrics(
  port: number,
  registry: Registry,
  host = DEFAULT_METRICS_HOST,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new StartupError(
          'config',
          `cannot serve metrics on ${host}:${port}: ${err.message} (change --metrics-port or --metrics-host)`,
        ),
      ),
    );
    server.listen(port, host, resolve);
  });
  server.unref();
  const bound = server.address() as AddressInfo;
  return {
    host: bound.address,
    port: bound.port,
    url: metricsUrl(bound.address, bound.port),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
