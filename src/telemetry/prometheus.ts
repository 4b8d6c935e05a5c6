/**
 * Prometheus text exposition (format 0.0.4) and the small HTTP server each actor serves it on
 * (`--metrics-port`; 0 = off). Metric values are read at scrape time from the actor's own state,
 * so the hot paths (decode step, routing decision, heartbeat) do no metrics work at all.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StartupError } from '../errors/errors.ts';

/** One sample: label values and a number. */
export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
}

/** One metric family. */
export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: readonly Sample[];
}

/** Where actors serve metrics: loopback unless told otherwise. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Renders families as Prometheus text. */
export function renderFamilies(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {});
      const text =
        labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
      lines.push(`${f.name}${text} ${Number.isFinite(s.value) ? s.value : 0}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `GET /metrics` on `port` (0 = a free port); `collect` is called per scrape. */
export async function serveMetrics(
  port: number,
  collect: () => readonly Family[],
  host = DEFAULT_METRICS_HOST,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    res
      .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
      .end(renderFamilies(collect()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new StartupError(
          'config',
          `cannot serve metrics on ${host}:${port}: ${err.message} (change --metrics-port)`,
        ),
      ),
    );
    server.listen(port, host, resolve);
  });
  server.unref();
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
