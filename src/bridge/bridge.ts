/**
 * The bridge actor: HTTP in, NATS out. It owns nothing durable: one SwitchyardClient (one NATS
 * connection) carries every generation, a cluster view built from heartbeats answers the
 * read-only routes, and the policies (keys, limits, cache) sit in front of the cluster. Every
 * request gets a request id (the caller's `x-request-id`, or a fresh one), echoed back; scoped
 * to the caller's tenant (`tenancy.ts`) it is the NATS request id. A client that goes away
 * cancels its generation; one that only half-closes its socket after a complete request (HTTP/1.1
 * allows it) still gets its answer. `Host` is checked against DNS rebinding (`host-check.ts`).
 *
 * `stop()` drains: stop accepting, let in-flight requests finish within the grace, cancel the
 * rest, close the connections, then the NATS client.
 */
import {
  STATUS_CODES,
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Duplex } from 'node:stream';
import { SwitchyardClient } from '../client/client.ts';
import { newRequestId } from '../client/request.ts';
import { actorInboxPrefix } from '../cluster/subjects.ts';
import { StartupError, UnavailableError, toSwitchyardError } from '../errors/errors.ts';
import { createLogger, type Logger } from '../telemetry/logger.ts';
import { ClusterView } from './cluster-view.ts';
import { LoadShedder } from './load-shedding.ts';
import { acceptedHostNames, checkHost } from './host-check.ts';
import { closeIdleAfterPendingReads } from './keep-alive.ts';
import { SingleFlight } from './single-flight.ts';
import { scopedRequestId, tenantOf } from './tenancy.ts';
import type { BridgeContext, BridgeState, RequestContext } from './context.ts';
import { HttpInputError, STATUS_CLIENT_CLOSED, toHttpError } from './http-errors.ts';
import { REQUEST_ID_HEADER, requestIdOf, sendError } from './http-io.ts';
import { BridgeMetrics } from './metrics.ts';
import {
  DEFAULT_CONNECTIONS_CHECK_INTERVAL_MS,
  compileBridgeOptions,
  type BridgeOptions,
  type CompiledBridgeOptions,
  type PolicyContext,
  type PolicySource,
} from './options.ts';
import {
  DISABLED_CACHE,
  OPEN_AUTHENTICATOR,
  UNLIMITED_RATE_LIMITER,
  ANONYMOUS_CALLER,
} from './policy-defaults.ts';
import type { Authenticator, CachedGeneration, RateLimiter, ResponseCache } from './policy.ts';
import { UNMATCHED_ROUTE, pathOf, resolveRoute, type Route } from './routes.ts';
import { context, type Attributes } from '@opentelemetry/api';
import { HTTP_ATTRS, SWITCHYARD_ATTRS } from '../telemetry/attributes.ts';
import { endSpan, startHttpServerSpan } from '../telemetry/propagation.ts';

export type { BridgeState } from './context.ts';

/** After the grace, how long cancelled requests get to end before their connections are cut. */
export const DRAIN_CANCEL_WAIT_MS = 1_000;

/**
 * Connections the kernel holds for the bridge before it accepts them (node's default: 511; the
 * kernel caps it at net.core.somaxconn). A burst of new connections to a bridge that is behind
 * (chaos `overload`: ~1,000 new keep-alive sockets a second) overflows a short queue; the kernel
 * then drops the handshake's last ACK, the client believes it connected and its request waits for
 * TCP retransmits, seconds later, until node's header timeout answers 408 to a request that was
 * sent at once.
 */
export const LISTEN_BACKLOG = 4_096;

/** Statuses of HTTP-level failures that node reports as client errors (as its default handler answers them). */
const CLIENT_ERROR_STATUS: Readonly<Record<string, number>> = {
  ERR_HTTP_REQUEST_TIMEOUT: 408,
  HPE_HEADER_OVERFLOW: 431,
};
const CLIENT_ERROR_MESSAGE: Readonly<Record<number, string>> = {
  408: 'the request did not arrive in time',
  431: 'the request headers are too large',
  400: 'the request is not valid HTTP/1.1',
};

/** A running bridge. */
export interface Bridge {
  readonly id: string;
  /** `http://host:port`, the base of every route (the OpenAI SDK's baseURL is `${url}/v1`). */
  readonly url: string;
  /** The port it listens on (the real one when options.port was 0). */
  readonly port: number;
  readonly state: BridgeState;
  /** Drains (stop accepting, finish in-flight within the grace, cancel the rest) and closes. Idempotent. */
  stop(): Promise<void>;
  /** Resolves once the bridge has stopped. */
  readonly closed: Promise<void>;
}

/** One request in flight, for the drain. */
interface Live {
  abort: AbortController;
  route: Route | undefined;
  done: Promise<void>;
}

async function resolvePolicy<T>(
  source: PolicySource<T> | undefined,
  fallback: T,
  ctx: PolicyContext,
): Promise<T> {
  if (source === undefined) return fallback;
  return typeof source === 'function' ? await (source as (c: PolicyContext) => T | Promise<T>)(ctx) : source;
}

/** Connects to NATS, resolves the policies, listens; resolves once it takes requests. */
export async function startBridge(opts: BridgeOptions = {}): Promise<Bridge> {
  const options = compileBridgeOptions(opts);
  const log = createLogger({ role: 'bridge', id: options.id });
  const client = await SwitchyardClient.connect({
    nats: {
      name: `bridge-${options.id}`,
      ...options.nats,
      inboxPrefix: options.nats.inboxPrefix ?? actorInboxPrefix('bridge', options.id),
    },
    defaultTimeoutMs: options.generationTimeoutMs,
  });
  const view = new ClusterView({ log });
  view.start(client.nc);
  const policies: Array<unknown> = [];
  try {
    const ctx: PolicyContext = { nc: client.nc, log };
    const auth = await resolvePolicy<Authenticator>(options.policies.auth, OPEN_AUTHENTICATOR, ctx);
    policies.push(auth);
    const limiter = await resolvePolicy<RateLimiter>(options.policies.limiter, UNLIMITED_RATE_LIMITER, ctx);
    policies.push(limiter);
    const cache = await resolvePolicy<ResponseCache>(options.policies.cache, DISABLED_CACHE, ctx);
    policies.push(cache);
    const bridge = new BridgeActor(options, client, view, { auth, limiter, cache }, log);
    await bridge.listen();
    log.info({ url: bridge.url, auth: auth.enabled, cache: cache.enabled }, 'bridge listening');
    return bridge;
  } catch (err) {
    view.close();
    await closePolicies(policies, log);
    await client.close();
    throw err;
  }
}

async function closePolicies(policies: readonly unknown[], log: Logger): Promise<void> {
  for (const p of policies) {
    const close = (p as { close?: unknown } | undefined)?.close;
    if (typeof close !== 'function') continue;
    try {
      await (close as () => unknown).call(p);
    } catch (err) {
      log.warn({ err }, 'a bridge policy failed to close');
    }
  }
}

class BridgeActor implements Bridge, BridgeContext {
  readonly closed: Promise<void>;
  readonly metrics: BridgeMetrics;
  readonly auth: Authenticator;
  readonly limiter: RateLimiter;
  readonly cache: ResponseCache;
  readonly flights = new SingleFlight<CachedGeneration>();
  readonly shedder: LoadShedder;
  private current: BridgeState = 'starting';
  /** The `Host` names answered; undefined: any. */
  private readonly hostNames: ReadonlySet<string> | undefined;
  private readonly server: Server;
  private readonly live = new Set<Live>();
  private boundPort = 0;
  private stopping: Promise<void> | undefined;
  private resolveClosed!: () => void;

  constructor(
    readonly options: CompiledBridgeOptions,
    readonly client: SwitchyardClient,
    readonly view: ClusterView,
    policies: { auth: Authenticator; limiter: RateLimiter; cache: ResponseCache },
    readonly log: Logger,
  ) {
    this.metrics = new BridgeMetrics(options.id, {
      inFlight: () => this.live.size,
      liveReplicas: () => view.replicas().filter((r) => r.live).length,
    });
    this.shedder = new LoadShedder(() => view.replicas());
    this.auth = policies.auth;
    this.limiter = policies.limiter;
    this.cache = policies.cache;
    this.hostNames = acceptedHostNames(options.host, options.allowedHosts);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.server = createServer(
      {
        headersTimeout: options.headersTimeoutMs,
        requestTimeout: options.requestTimeoutMs,
        keepAliveTimeout: options.keepAliveTimeoutMs,
        connectionsCheckingInterval: Math.min(
          DEFAULT_CONNECTIONS_CHECK_INTERVAL_MS,
          options.headersTimeoutMs,
        ),
        noDelay: true,
      },
      (req, res) => this.handle(req, res),
    );
    // A client that half-closes after its request (HTTP/1.1 allows it) still gets the answer:
    // node's default ends our side of the socket at the client's FIN, as if it had gone. A client
    // that has really gone is noticed when a write fails (at the next SSE event, or the answer).
    // `httpAllowHalfOpen` is node's own switch for it (set by its constructor, not in the types).
    (this.server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => this.clientError(err, socket));
    closeIdleAfterPendingReads(this.server);
  }

  /**
   * HTTP that never became a request (unparseable, or node's header / request timeout): answer
   * with a status where the socket still takes one, as node's default handler would, but with
   * a JSON body and counted.
   */
  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const status = CLIENT_ERROR_STATUS[err.code ?? ''] ?? 400;
    this.metrics.countRequest(UNMATCHED_ROUTE, status);
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const body = JSON.stringify(
      toHttpError(new HttpInputError(400, CLIENT_ERROR_MESSAGE[status] ?? 'malformed HTTP request'), '-')
        .body,
    );
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  get id(): string {
    return this.options.id;
  }

  get state(): BridgeState {
    return this.current;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `http://${host}:${this.boundPort}`;
  }

  inFlight(): number {
    return this.live.size;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        this.current = 'failed';
        reject(
          new StartupError(
            'config',
            `the bridge cannot listen on ${this.options.host}:${this.options.port}: ${err.message}` +
              (err.code === 'EADDRINUSE' ? ' (the port is taken: choose another with --port)' : ''),
            { cause: err },
          ),
        );
      };
      this.server.once('error', onError);
      const at = { port: this.options.port, host: this.options.host, backlog: LISTEN_BACKLOG };
      this.server.listen(at, () => {
        this.server.off('error', onError);
        const address = this.server.address();
        this.boundPort = typeof address === 'object' && address !== null ? address.port : this.options.port;
        this.current = 'running';
        resolve();
      });
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const abort = new AbortController();
    const entry: Live = { abort, route: undefined, done: Promise.resolve() };
    this.live.add(entry);
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    entry.done = this.serve(req, res, entry)
      .catch((err: unknown) => this.lastResort(res, err))
      .finally(() => {
        this.live.delete(entry);
        if (this.current === 'draining') this.server.closeIdleConnections();
      });
  }

  /**
   * A failure of the error path itself (a logger or the mapping threw): no request may take the
   * process down, so the connection is cut and the failure reported on stderr.
   */
  private lastResort(res: ServerResponse, err: unknown): void {
    res.destroy();
    this.metrics.countRequest(UNMATCHED_ROUTE, 500);
    process.emitWarning(`bridge ${this.id}: request handling failed: ${String(err)}`);
  }

  private async serve(req: IncomingMessage, res: ServerResponse, entry: Live): Promise<void> {
    const started = performance.now();
    const path = pathOf(req.url);
    let routeLabel = UNMATCHED_ROUTE;
    let status = 500;
    // A malformed x-request-id is refused, under a fresh id so the refusal can still be traced.
    let requestId: string;
    let badRequestId: Error | undefined;
    try {
      requestId = requestIdOf(req);
    } catch (err) {
      requestId = newRequestId();
      badRequestId = toSwitchyardError(err);
    }
    const headers: Record<string, string> = { [REQUEST_ID_HEADER]: requestId };
    const log = this.log.child({ requestId });
    const trace = startHttpServerSpan(req.headers, req.method ?? 'HTTP', {
      ...httpAttributes(req, path, this.boundPort),
      [SWITCHYARD_ATTRS.requestId]: requestId,
    });
    // Everything this request does (the NATS client's spans, log lines) runs in its span's context.
    await context.with(trace.context, async () => {
      let failure: unknown;
      try {
        if (badRequestId !== undefined) throw badRequestId;
        if (this.current !== 'running') {
          headers.connection = 'close';
          throw new UnavailableError('the bridge is shutting down; retry on another bridge');
        }
        const { route, handler } = resolveRoute(req.method, path);
        if (!route.anyHost) checkHost(req.headers.host, this.hostNames);
        entry.route = route;
        routeLabel = route.path;
        trace.span.updateName(`${req.method ?? 'HTTP'} ${route.path}`);
        trace.span.setAttribute(HTTP_ATTRS.route, route.path);
        const caller =
          route.auth && this.auth.enabled
            ? this.auth.authenticate(req.headers.authorization)
            : ANONYMOUS_CALLER;
        const clusterRequestId = scopedRequestId(tenantOf(caller), requestId);
        // The span names the id the routers' and replicas' spans carry, so they join up in a search.
        trace.span.setAttribute(SWITCHYARD_ATTRS.requestId, clusterRequestId);
        const call: RequestContext = {
          req,
          res,
          requestId,
          clusterRequestId,
          headers,
          log,
          signal: entry.abort.signal,
          caller,
        };
        status = await handler(this, call);
      } catch (err) {
        failure = err;
        const error = toSwitchyardError(err);
        if (error.code === 'rate_limited') this.metrics.countRateLimited();
        status = this.fail(res, err, requestId, headers, entry.abort.signal.aborted);
        log[logLevelOf(status)]({ err: error, status, method: req.method, path }, 'request failed');
      }
      if (entry.abort.signal.aborted && !res.writableFinished) status = STATUS_CLIENT_CLOSED;
      this.metrics.countRequest(routeLabel, status);
      log.debug(
        { method: req.method, path, status, ms: +(performance.now() - started).toFixed(2) },
        'request',
      );
      trace.span.setAttribute(HTTP_ATTRS.responseStatusCode, status);
      // As the HTTP conventions say: a server span fails on 5xx only; a client's mistake is no error of ours.
      endSpan(trace.span, status >= 500 ? (failure ?? new Error(`HTTP ${status}`)) : undefined);
    });
  }

  /** Answers an error where the response can still take one; returns the status to count. */
  private fail(
    res: ServerResponse,
    err: unknown,
    requestId: string,
    headers: Record<string, string>,
    clientGone: boolean,
  ): number {
    if (clientGone || res.destroyed) return STATUS_CLIENT_CLOSED;
    if (res.headersSent) {
      // A body was being written when the failure came: cut the connection so the client sees it.
      res.destroy();
      return 500;
    }
    const status = sendError(res, err, requestId, headers);
    if (status === STATUS_CLIENT_CLOSED) res.destroy();
    return status;
  }

  stop(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  private async drain(): Promise<void> {
    if (this.current === 'running' || this.current === 'starting') this.current = 'draining';
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    for (const entry of this.live) if (entry.route?.endsOnDrain) entry.abort.abort();
    const pending = (): Promise<unknown> => Promise.all([...this.live].map((e) => e.done));
    if (!(await within(pending(), this.options.drainGraceMs))) {
      this.log.warn(
        { inFlight: this.live.size },
        'drain grace over: cancelling the requests still in flight',
      );
      for (const entry of this.live) entry.abort.abort();
      await within(pending(), DRAIN_CANCEL_WAIT_MS);
    }
    this.server.closeAllConnections();
    await serverClosed;
    this.view.close();
    await closePolicies([this.auth, this.limiter, this.cache], this.log);
    await this.client.close();
    this.current = 'stopped';
    this.log.info('bridge stopped');
    this.resolveClosed();
  }
}

/** HTTP server attributes of the semantic conventions, known before the route is resolved. */
function httpAttributes(req: IncomingMessage, path: string, port: number): Attributes {
  const attributes: Attributes = {
    [HTTP_ATTRS.requestMethod]: req.method ?? '_OTHER',
    [HTTP_ATTRS.urlPath]: path,
    [HTTP_ATTRS.urlScheme]: 'http',
    [HTTP_ATTRS.serverPort]: port,
  };
  const agent = req.headers['user-agent'];
  if (agent !== undefined) attributes[HTTP_ATTRS.userAgent] = agent.slice(0, 256);
  if (req.socket.remoteAddress !== undefined) attributes[HTTP_ATTRS.clientAddress] = req.socket.remoteAddress;
  return attributes;
}

/** A bug of ours is an error; overload, outages and deadlines are the cluster's weather. */
function logLevelOf(status: number): 'error' | 'warn' | 'info' | 'debug' {
  if (status === 500) return 'error';
  if (status > 500) return 'warn';
  return status === STATUS_CLIENT_CLOSED ? 'info' : 'debug';
}

/** True when `promise` settled within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
