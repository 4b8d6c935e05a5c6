/**
 * The route table: every path the bridge answers, its methods, and whether it needs an API key.
 * A path not in the table is the web page's files or 404; a known path with another method is
 * 405 with `Allow`. Route paths double as the metrics' `route` label (bounded cardinality).
 */
import { chatCompletions, completions } from './api.ts';
import { collectorStats } from './collector-stats.ts';
import type { Handler } from './context.ts';
import { cluster, clusterStream, healthz, listModels, metrics, readyz } from './endpoints.ts';
import { feedback } from './feedback.ts';
import { HttpInputError } from './http-errors.ts';
import { serveStatic } from './static.ts';

/** Methods the bridge answers on some route (HEAD is served as GET without a body). */
export type Method = 'GET' | 'POST';

/** One route. */
export interface Route {
  /** The path, and the metrics label. */
  readonly path: string;
  /** Needs `Authorization: Bearer <key>` when keys are configured (every `/v1` route). */
  readonly auth: boolean;
  /** Never finishes by itself (a watch): ended at the start of a drain rather than waited for. */
  readonly endsOnDrain?: boolean;
  /** Answers whatever `Host` names (health probes: kubelets send the pod IP; they reveal nothing). */
  readonly anyHost?: boolean;
  readonly methods: Readonly<Partial<Record<Method, Handler>>>;
}

/** Metrics label of requests that matched no route. */
export const UNMATCHED_ROUTE = 'unmatched';

function route(
  path: string,
  auth: boolean,
  methods: Route['methods'],
  flags: { endsOnDrain?: boolean; anyHost?: boolean } = {},
): [string, Route] {
  return [
    path,
    { path, auth, methods, endsOnDrain: flags.endsOnDrain ?? false, anyHost: flags.anyHost ?? false },
  ];
}

/** Every API route, by exact path. */
export const ROUTES: ReadonlyMap<string, Route> = new Map([
  route('/v1/completions', true, { POST: completions }),
  route('/v1/chat/completions', true, { POST: chatCompletions }),
  route('/v1/feedback', true, { POST: feedback }),
  route('/v1/models', true, { GET: listModels }),
  route('/v1/cluster', true, { GET: cluster }),
  route('/v1/cluster/stream', true, { GET: clusterStream }, { endsOnDrain: true }),
  route('/v1/collector/stats', true, { GET: collectorStats }),
  route('/healthz', false, { GET: healthz }, { anyHost: true }),
  route('/readyz', false, { GET: readyz }, { anyHost: true }),
  route('/metrics', false, { GET: metrics }),
]);

/** The web page: any other GET path is looked up as one of its files. */
const STATIC_ROUTE: Route = {
  path: 'static',
  auth: false,
  methods: {
    GET: (bridge, call) => serveStatic(bridge.options.staticDir, pathOf(call.req.url), call),
  },
};

/** The path of a request target, without query or fragment. */
export function pathOf(url: string | undefined): string {
  const target = url ?? '/';
  const end = target.search(/[?#]/);
  return end < 0 ? target : target.slice(0, end);
}

/** What answers `method path`, or throws 404 / 405. */
export function resolveRoute(method: string | undefined, path: string): { route: Route; handler: Handler } {
  const effective = method === 'HEAD' ? 'GET' : method;
  const known = ROUTES.get(path);
  const found = known ?? (effective === 'GET' ? STATIC_ROUTE : undefined);
  if (found === undefined) {
    throw new HttpInputError(404, `no route ${String(method)} ${path.slice(0, 128)}`);
  }
  const handler = found.methods[effective as Method];
  if (handler === undefined) {
    const allow = Object.keys(found.methods).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
    throw new HttpInputError(405, `${path} does not take ${String(method)}; use ${allow.join(' or ')}`, {
      allow: allow.join(', '),
    });
  }
  return { route: found, handler };
}
