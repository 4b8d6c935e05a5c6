/**
 * The bridge's read-only endpoints: health (`/healthz`: the process answers; `/readyz`: a live
 * replica serves a model and the bridge is not draining), `/v1/models`, the cluster view
 * (`/v1/cluster` as one JSON snapshot, `/v1/cluster/stream` as SSE snapshots), and `/metrics`.
 */
import { UnavailableError } from '../errors/errors.ts';
import type { BridgeContext, RequestContext } from './context.ts';
import type { ReplicaView } from './cluster-view.ts';
import { sendError, sendJson, sendText } from './http-io.ts';
import { SseWriter } from './sse.ts';
import { METRICS_CONTENT_TYPE } from '../telemetry/prometheus.ts';

/** Prometheus text exposition format. */
/** `owned_by` of every model in `/v1/models`. */
const MODEL_OWNER = 'switchyard';

function answerError(call: RequestContext, err: unknown): number {
  return sendError(call.res, err, call.requestId, call.headers);
}

/** `GET /healthz`: 200 while the process can answer at all. */
export function healthz(bridge: BridgeContext, call: RequestContext): Promise<number> {
  sendJson(call.res, 200, { status: 'ok', state: bridge.state }, call.headers);
  return Promise.resolve(200);
}

/** `GET /readyz`: 200 only when a live replica serves a model and the bridge takes requests. */
export function readyz(bridge: BridgeContext, call: RequestContext): Promise<number> {
  if (bridge.state !== 'running') {
    return Promise.resolve(answerError(call, new UnavailableError(`the bridge is ${bridge.state}`)));
  }
  const models = bridge.view.models();
  if (models.length === 0) {
    return Promise.resolve(answerError(call, new UnavailableError('no live replica serves a model yet')));
  }
  const replicas = models.reduce((sum, m) => sum + m.replicas, 0);
  sendJson(
    call.res,
    200,
    { status: 'ready', models: models.map((m) => m.id), live_replicas: replicas },
    call.headers,
  );
  return Promise.resolve(200);
}

/** `GET /v1/models`: models with at least one live replica, in OpenAI's list shape (plus versions). */
export function listModels(bridge: BridgeContext, call: RequestContext): Promise<number> {
  const data = bridge.view.models().map((m) => ({
    id: m.id,
    object: 'model',
    created: Math.floor(m.firstSeen / 1000),
    owned_by: MODEL_OWNER,
    versions: m.versions,
    replicas: m.replicas,
  }));
  sendJson(call.res, 200, { object: 'list', data }, call.headers);
  return Promise.resolve(200);
}

function replicaJson(r: ReplicaView, now: number): Record<string, unknown> {
  return {
    id: r.id,
    model: r.model,
    version: r.version,
    device: r.device,
    state: r.state,
    live: r.live,
    stuck: r.stuck,
    active_sequences: r.activeSequences,
    queue_depth: r.queueDepth,
    max_batch_size: r.maxBatchSize,
    max_queue: r.maxQueue,
    free_token_budget: r.freeTokenBudget,
    token_budget: r.tokenBudget,
    last_seen_ms_ago: Math.max(0, now - r.lastSeen),
    digest: r.digest,
    retiring_versions: r.retiringVersions,
    swapping_to: r.swappingTo,
    swap_error: r.swapError,
  };
}

/** The cluster as `/v1/cluster` shows it (snake_case, like every other JSON body of the API). */
export function clusterSnapshot(bridge: BridgeContext, now = Date.now()): Record<string, unknown> {
  return {
    object: 'cluster',
    time: now,
    bridge: { id: bridge.options.id, state: bridge.state, in_flight: bridge.inFlight() },
    models: bridge.view.models(now).map((m) => ({ id: m.id, versions: m.versions, replicas: m.replicas })),
    replicas: bridge.view.replicas(now).map((r) => replicaJson(r, now)),
  };
}

/** `GET /v1/cluster`: one snapshot of replicas, states, load and versions (the web page polls it). */
export function cluster(bridge: BridgeContext, call: RequestContext): Promise<number> {
  sendJson(call.res, 200, clusterSnapshot(bridge), call.headers);
  return Promise.resolve(200);
}

/**
 * `GET /v1/cluster/stream`: the same snapshot as SSE every `clusterStreamIntervalMs` until the
 * client leaves or the bridge drains (then it ends, so it never holds a drain up).
 */
export async function clusterStream(bridge: BridgeContext, call: RequestContext): Promise<number> {
  const sse = new SseWriter(call.res, call.headers);
  while (!call.signal.aborted && bridge.state === 'running') {
    await sse.send(clusterSnapshot(bridge));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, bridge.options.clusterStreamIntervalMs);
      call.signal.addEventListener('abort', done, { once: true });
      function done(): void {
        clearTimeout(timer);
        call.signal.removeEventListener('abort', done);
        resolve();
      }
    });
  }
  if (!call.res.destroyed) sse.done();
  return 200;
}

/** `GET /metrics`: Prometheus text. */
export async function metrics(bridge: BridgeContext, call: RequestContext): Promise<number> {
  const text = await bridge.metrics.render();
  sendText(call.res, 200, text, { ...call.headers, 'content-type': METRICS_CONTENT_TYPE });
  return 200;
}
