/**
 * The replica actor: one engine on one device, serving generate requests for its model over
 * NATS. It streams one chunk per decode step, announces itself with heartbeats that carry live
 * load and engine progress, registers as a NATS micro service ($SRV.PING/INFO/STATS), cancels
 * work whose router has gone, and drains on stop().
 */
import type { Msg, NatsConnection } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import { connectNats } from '../cluster/connection.ts';
import { readRequestMeta } from '../cluster/headers.ts';
import { decodeGenerateRequest, type GenerateRequest } from '../cluster/messages/generate.ts';
import { decodeCancel } from '../cluster/messages/stream.ts';
import { STREAM_KEEPALIVE_INTERVAL_MS } from '../cluster/messages/stream.ts';
import { watchReconnects } from '../cluster/reconnects.ts';
import { StreamResponder } from '../cluster/stream-responder.ts';
import {
  actorInboxPrefix,
  replicaCancelSubject,
  replicaFaultSubject,
  replicaGenerateSubject,
  replicaSwapSubject,
} from '../cluster/subjects.ts';
import { EchoEngine } from '../engine/echo.ts';
import { Engine } from '../engine/engine.ts';
import type { ServingEngine } from '../engine/types.ts';
import {
  DeadlineExceededError,
  InvalidRequestError,
  ModelNotFoundError,
  UnavailableError,
  toSwitchyardError,
  type SwitchyardError,
} from '../errors/errors.ts';
import { followAlias, resolveTarget, type AliasFollower, type ModelTarget } from './model-source.ts';
import { isRegistryUrl, registryUrl } from '../registry/source.ts';
import { recordRef } from '../registry/cache.ts';
import type { AliasRecord } from '../registry/alias-record.ts';
import { VersionedEngine, type LoadedVersion } from './versions.ts';
import { createLogger, type Logger } from '../telemetry/logger.ts';
import { applyFault } from './faults.ts';
import { HeartbeatPublisher } from './heartbeat.ts';
import { compileReplicaOptions, type CompiledReplicaOptions, type ReplicaOptions } from './options.ts';
import { OrphanWatch } from './orphans.ts';
import { serveMetrics, type MetricsServer } from '../telemetry/prometheus.ts';
import { context } from '@opentelemetry/api';
import { endSpan } from '../telemetry/propagation.ts';
import { ReplicaMetrics } from './metrics.ts';
import { describeRequest, startRequestTrace, type RequestTrace } from './request-trace.ts';
import type { ActorState } from '../cluster/actor-state.ts';
import { ServedRequest, workKey, type ServingContext } from './served-request.ts';
import type { RequestMeta } from '../cluster/headers.ts';
import { decodeSwapCommand, encodeSwapReply, type SwapDone } from '../cluster/messages/swap.ts';

/** Lifecycle of a replica (the one actor lifecycle). */
export type ReplicaState = ActorState;

/** Service name in `$SRV.INFO` (any NATS services client lists replicas under it). */
export const REPLICA_SERVICE_NAME = 'switchyard-replica';
/** Version reported in `$SRV.INFO`. */
export const REPLICA_SERVICE_VERSION = '0.1.0';

/** A running replica. */
export interface Replica {
  readonly id: string;
  readonly state: ReplicaState;
  /** Drains (finish in-flight within the grace period, hand the rest over), deregisters, closes. Idempotent. */
  stop(): Promise<void>;
  /** Resolves once the replica has stopped, whatever stopped it. */
  readonly closed: Promise<void>;
  /**
   * Hot swap: loads `model` (a folder or a registry URL) beside the version served now, warms
   * it, then gives it the new requests; requests in flight finish on the version they started
   * on, and the old version is stopped once they have. Rejects, serving on with the old version,
   * when the new one fails to load or warm. Swaps queue: one runs at a time.
   */
  swap(model: string): Promise<SwapDone>;
  /** The version new requests get. */
  readonly serving: { model: string; version: string; digest: string };
}

/** Progress lines for humans (the CLI prints them while models load). */
export interface ReplicaHooks {
  onProgress?(line: string): void;
}

/** Starts a replica and resolves once it is warmed up and announced. */
export async function startReplica(opts: ReplicaOptions, hooks: ReplicaHooks = {}): Promise<Replica> {
  const options = compileReplicaOptions(opts);
  const log = createLogger({ role: 'replica', id: options.id });
  const progress = (line: string): void => {
    log.info(line);
    hooks.onProgress?.(`replica ${options.id}: ${line}`);
  };
  const model = options.engine.modelDir;
  progress(`loading ${model} on ${options.engine.device ?? 'cpu'}…`);
  const connect = (): Promise<NatsConnection> =>
    connectNats({
      name: `replica-${options.id}`,
      ...options.nats,
      inboxPrefix: options.nats.inboxPrefix ?? actorInboxPrefix('replica', options.id),
    });
  // A registry model is fetched over NATS first; a folder loads before NATS is touched.
  const early = isRegistryUrl(model) ? await connect() : undefined;
  let engine: VersionedEngine;
  try {
    const target = await resolveTarget(model, sourceContext(options, early));
    if (target.fromCache)
      progress(`the registry is unreachable: starting ${target.source} from the local cache`);
    const first = await loadEngine(options, target);
    engine = new VersionedEngine(first, digestOf(target, first), retireGraceMs(options));
  } catch (err) {
    await early?.close();
    throw err;
  }
  let nc: NatsConnection;
  try {
    nc = early ?? (await connect());
  } catch (err) {
    await engine.stop();
    throw err;
  }
  const replica = new ReplicaActor(options, engine, nc, log);
  try {
    await replica.start(progress);
  } catch (err) {
    await replica.stop();
    throw err;
  }
  return replica;
}

/** Starts an engine for `target` with the replica's engine settings. */
async function loadEngine(options: CompiledReplicaOptions, target: ModelTarget): Promise<ServingEngine> {
  const engineOptions = {
    ...options.engine,
    modelDir: target.dir,
    ...(target.identity !== undefined ? { identity: target.identity } : {}),
  };
  return options.echo ? await EchoEngine.start(engineOptions) : await Engine.start(engineOptions);
}

/** The digest a replica announces for a loaded version. */
function digestOf(target: ModelTarget, engine: ServingEngine): string {
  return target.digest ?? engine.info.sha256;
}

function sourceContext(options: CompiledReplicaOptions, nc: NatsConnection | undefined) {
  return { nc, cacheDir: options.modelCacheDir, timeoutMs: options.registryTimeoutMs };
}

/**
 * How long a retired version stays loaded at least after a swap: enough for every router to
 * have seen the swap's heartbeat, so that a request pinned just before it still finds its version.
 */
function retireGraceMs(options: CompiledReplicaOptions): number {
  return Math.max(MIN_RETIRE_GRACE_MS, RETIRE_GRACE_BEATS * options.heartbeatIntervalMs);
}

/** Floor of {@link retireGraceMs}. */
const MIN_RETIRE_GRACE_MS = 2_000;
/** Heartbeat periods in {@link retireGraceMs}. */
const RETIRE_GRACE_BEATS = 10;

class ReplicaActor implements Replica {
  state: ReplicaState = 'starting';
  readonly closed: Promise<void>;
  /** Work by (origin, request id, attempt, reply subject): see {@link workKey}. */
  private readonly inFlight = new Map<string, ServedRequest>();
  /** The serving context of each loaded version (what its requests' ends say). */
  private readonly contexts = new WeakMap<LoadedVersion, ServingContext>();
  /** Swaps run one at a time, in order. */
  private swapChain: Promise<unknown> = Promise.resolve();
  private swapState: { to?: string; error?: string } = {};
  private follower: AliasFollower | undefined;
  /** Progress lines for humans (`up` prints them); set by start(). */
  private say: (line: string) => void = () => undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private stopReconnectWatch: (() => void) | undefined;
  private readonly heartbeat: HeartbeatPublisher;
  private readonly orphans: OrphanWatch;
  private service: Service | undefined;
  private metricsServer: MetricsServer | undefined;
  private readonly metrics: ReplicaMetrics;
  private stopping: Promise<void> | undefined;
  private resolveClosed!: () => void;
  /** Why the replica stops on its own (its engine died): it ends `failed`, not `stopped`. */
  private failedBy: Error | undefined;

  constructor(
    private readonly options: CompiledReplicaOptions,
    private readonly engine: VersionedEngine,
    private readonly nc: NatsConnection,
    private readonly log: Logger,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    engine.hooks = {
      onReleased: (v) => {
        this.say(`hot swap: ${v.engine.info.id}@${v.engine.info.version} retired, its session released`);
        this.metrics.swaps.inc({ outcome: 'released' });
        this.heartbeat.beat();
      },
      onRetiredFailed: (v, err) =>
        this.log.error({ version: v.engine.info.version, err: err.message }, 'a retiring version died'),
    };
    this.heartbeat = new HeartbeatPublisher(
      nc,
      options,
      engine,
      () => this.state,
      () => this.swapState,
    );
    this.orphans = new OrphanWatch(nc, options.orphanTimeoutMs, (origin) => this.cancelOrphans(origin), log);
    this.metrics = new ReplicaMetrics({
      id: options.id,
      engine,
      heartbeatsSent: () => this.heartbeat.sent,
    });
    void engine.failed.then((err) => {
      this.failedBy ??= err;
      this.log.error(
        { err: err.message },
        'engine failed; stopping so that a supervisor restarts the replica',
      );
      void this.stop();
    });
    void nc.closed().then((err) => {
      if (this.state !== 'stopped') {
        this.log.error({ err }, 'NATS connection closed; stopping');
        void this.stop();
      }
    });
  }

  get id(): string {
    return this.options.id;
  }

  get serving(): { model: string; version: string; digest: string } {
    const { info } = this.engine;
    return { model: info.id, version: info.version, digest: this.engine.current.digest };
  }

  swap(model: string): Promise<SwapDone> {
    const run = this.swapChain.then(() => this.runSwap(model));
    this.swapChain = run.catch(() => undefined);
    return run;
  }

  private async runSwap(model: string): Promise<SwapDone> {
    if (this.state !== 'running') {
      throw new UnavailableError(`replica ${this.id} is ${this.state}: it does not swap models`);
    }
    const from = this.engine.info;
    let target: ModelTarget;
    try {
      target = await resolveTarget(model, sourceContext(this.options, this.nc));
    } catch (err) {
      // Not found, corrupt (a sha256 that does not match), unreachable: the old version serves on.
      throw this.swapFailed(model, err);
    }
    const wanted = target.identity?.version;
    if (wanted === from.version && target.digest === this.engine.current.digest) {
      return { version: from.version, digest: this.engine.current.digest, swapped: false };
    }
    this.swapState = wanted !== undefined ? { to: wanted } : {};
    this.heartbeat.beat();
    this.say(`hot swap: loading ${target.source} beside ${from.id}@${from.version}…`);
    let engine: ServingEngine | undefined;
    try {
      engine = await loadEngine(this.options, target);
      const { info } = engine;
      if (info.id !== from.id) {
        throw new InvalidRequestError(
          `${target.source} is model ${info.id}; replica ${this.id} serves ${from.id} and swaps versions of it only`,
        );
      }
      const digest = digestOf(target, engine);
      if (info.version === from.version && digest !== this.engine.current.digest) {
        throw new InvalidRequestError(
          `${target.source} is ${info.id}@${info.version} with digest ${digest.slice(0, 12)}…, but that ` +
            `version is served with digest ${this.engine.current.digest.slice(0, 12)}…: one version, one model`,
        );
      }
      await engine.generate({ prompt: 'warm up', maxTokens: 2, temperature: 0 });
      if (this.state !== 'running')
        throw new UnavailableError(`replica ${this.id} began to stop during the swap`);
      this.engine.swap(engine, digest);
      this.swapState = {};
      this.metrics.swaps.inc({ outcome: 'swapped' });
      this.heartbeat.beat(); // routers send new requests to the new version at once
      this.say(`hot swap: new requests get ${info.id}@${info.version} (digest ${digest.slice(0, 12)}…)`);
      return { version: info.version, digest, swapped: true };
    } catch (err) {
      await engine?.stop().catch(() => undefined);
      throw this.swapFailed(target.source, err);
    }
  }

  /** Records a failed swap (heartbeats say why, a metric counts it) and returns its error. */
  private swapFailed(source: string, err: unknown): SwitchyardError {
    const error = toSwitchyardError(err);
    this.swapState = { error: `swap to ${source} failed: ${error.message}` };
    this.metrics.swaps.inc({ outcome: 'failed' });
    this.heartbeat.beat();
    this.log.error({ to: source, err: error.message }, 'hot swap failed; serving on with the old version');
    return error;
  }

  /** The alias this replica follows moved: swap to its version (a swap that fails is logged and reported). */
  private onAliasMoved(record: AliasRecord): void {
    if (record.version === this.engine.info.version || this.state !== 'running') return;
    this.log.info({ alias: record.alias, version: record.version, by: record.by }, 'alias moved: hot swap');
    this.swap(registryUrl(record.id, record.version)).then(
      // The alias's cached ref follows too: a restart while the registry is away serves what we serve.
      (done) =>
        recordRef(this.options.modelCacheDir, record.id, record.alias, {
          version: done.version,
          digest: done.digest,
        }).catch((err: unknown) => this.log.warn({ err }, 'could not record the alias in the model cache')),
      () => undefined,
    );
  }

  /** What the requests running on `version` report (built once per loaded version). */
  private contextOf(version: LoadedVersion): ServingContext {
    let ctx = this.contexts.get(version);
    if (ctx === undefined) {
      const { info } = version.engine;
      ctx = {
        replicaId: this.options.id,
        log: this.log,
        modelVersion: info.version,
        modelSha256: info.sha256,
        modelName: `${info.id}@${info.version}`,
        logPrompts: this.options.logPrompts,
      };
      this.contexts.set(version, ctx);
    }
    return ctx;
  }

  async start(progress: (line: string) => void): Promise<void> {
    this.say = progress;
    this.heartbeat.start();
    this.orphans.start();
    this.keepaliveTimer = setInterval(() => {
      for (const request of this.inFlight.values()) request.keepalive(STREAM_KEEPALIVE_INTERVAL_MS);
    }, STREAM_KEEPALIVE_INTERVAL_MS / 2).unref();
    this.stopReconnectWatch = watchReconnects(this.nc, () => {
      // Messages published while disconnected are gone: hand every stream over rather than let
      // its router wait for what will never come.
      this.log.warn({ inFlight: this.inFlight.size }, 'NATS reconnected: handing in-flight requests over');
      for (const request of this.inFlight.values()) {
        request.endEarly(new UnavailableError(`replica ${this.id} reconnected to NATS: resume elsewhere`));
      }
    });
    if (this.options.warmup) {
      progress('warming up…');
      await this.engine.generate({ prompt: 'warm up', maxTokens: 2, temperature: 0 });
    }
    const { info } = this.engine;
    this.service = await new Svcm(this.nc).add({
      name: REPLICA_SERVICE_NAME,
      version: REPLICA_SERVICE_VERSION,
      description: `switchyard replica serving ${info.id}@${info.version}`,
      metadata: { replica: this.id, model: info.id, model_version: info.version, device: this.engine.device },
      queue: '',
    });
    this.service.addEndpoint('generate', {
      subject: replicaGenerateSubject(this.id),
      handler: (err, msg) =>
        err ? this.log.error({ err }, 'generate endpoint failed') : this.onGenerate(msg),
      metadata: { model: info.id },
    });
    this.service.addEndpoint('cancel', {
      subject: replicaCancelSubject(this.id),
      handler: (err, msg) => (err ? this.log.error({ err }, 'cancel endpoint failed') : this.onCancel(msg)),
    });
    this.nc.subscribe(replicaSwapSubject(this.id), {
      callback: (err, msg) => {
        if (!err) this.onSwap(msg);
      },
    });
    if (this.options.allowFaultInjection) {
      this.nc.subscribe(replicaFaultSubject(this.id), {
        callback: (err, msg) => {
          if (!err) applyFault(msg, this.engine, this.heartbeat, this.log);
        },
      });
      this.log.warn('fault injection is enabled on this replica');
    }
    if (this.options.metricsPort > 0) {
      this.metricsServer = await serveMetrics(
        this.options.metricsPort,
        this.metrics.registry,
        this.options.metricsHost,
      );
      progress(`metrics on ${this.metricsServer.url}`);
    }
    // Ready means subscribed: the server has our subscriptions before anyone is told we serve.
    await this.nc.flush();
    this.state = 'running';
    this.heartbeat.beat();
    this.follower = followAlias(
      this.options.engine.modelDir,
      this.nc,
      (record) => this.onAliasMoved(record),
      (err) => this.log.warn({ err: toSwitchyardError(err).message }, 'alias watch failed; watching again'),
    );
    progress(`ready (${info.id}@${info.version}, ${this.engine.device})`);
  }

  stop(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  private onGenerate(msg: ServiceMsg): void {
    if (!msg.reply) return; // nowhere to answer: a malformed publish, not a request
    let responder = new StreamResponder(this.nc, msg.reply);
    const trace = startRequestTrace(msg.headers, msg.subject, this.id, msg.data.length);
    try {
      const meta = readRequestMeta(msg.headers);
      responder = new StreamResponder(this.nc, msg.reply, {
        requestId: meta.requestId,
        attempt: meta.attempt,
      });
      const req = decodeGenerateRequest(msg.data);
      describeRequest(trace, req, meta.requestId ?? '', meta.attempt ?? 1);
      const version = this.checkServable(req, meta.deadline);
      // The engine tokenizes inside the request's span, so its span is a child of this one.
      const reply = msg.reply;
      context.with(trace.context, () => this.serve(version, req, meta, reply, responder, trace));
    } catch (err) {
      const error = toSwitchyardError(err);
      this.metrics.refused.inc({ code: error.code });
      endSpan(trace.span, error);
      responder.error(error);
    }
  }

  /** The loaded version the request runs on; throws the typed refusal when there is none. */
  private checkServable(req: GenerateRequest, deadline: number | undefined): LoadedVersion {
    const { info } = this.engine;
    if (this.state !== 'running') {
      throw new UnavailableError(`replica ${this.id} is ${this.state}: retry on another replica`);
    }
    if (req.model !== info.id) {
      throw new ModelNotFoundError(`replica ${this.id} serves ${info.id}@${info.version}, not ${req.model}`);
    }
    const version = this.engine.select(req.version);
    if (version === undefined) {
      // A router pinned the request to a version this replica swapped away from (and released):
      // retryable, so the router resumes it on a replica that still serves that version.
      throw new UnavailableError(
        `replica ${this.id} serves ${info.id}@${info.version}, not ${req.model}@${req.version ?? ''}: ` +
          'resume on a replica serving that version',
      );
    }
    if (deadline !== undefined && deadline <= Date.now()) {
      throw new DeadlineExceededError('deadline passed before the replica received the request');
    }
    return version;
  }

  /** An operator's swap command: swap, then answer with the version served or the error. */
  private onSwap(msg: Msg): void {
    let model: string;
    try {
      model = decodeSwapCommand(msg.data).model;
    } catch (err) {
      if (msg.reply) msg.respond(encodeSwapReply({ error: toSwitchyardError(err) }));
      return;
    }
    this.swap(model).then(
      (done) => msg.reply && msg.respond(encodeSwapReply(done)),
      (err: unknown) => msg.reply && msg.respond(encodeSwapReply({ error: toSwitchyardError(err) })),
    );
  }

  private serve(
    version: LoadedVersion,
    req: GenerateRequest,
    meta: RequestMeta,
    reply: string,
    responder: StreamResponder,
    trace: RequestTrace,
  ): void {
    const requestId = meta.requestId ?? `anon-${Math.random().toString(36).slice(2)}`;
    const key = { origin: meta.origin, requestId, attempt: meta.attempt ?? 1, reply };
    // Throws invalid_request / busy at once, before anything is acked.
    const controller = new AbortController();
    const stream = this.engine.open(version, req, { signal: controller.signal });
    const request = new ServedRequest(
      key,
      this.contextOf(version),
      req,
      stream,
      controller,
      responder,
      trace,
      meta.deadline,
    );
    const id = workKey(key);
    this.inFlight.get(id)?.endEarly(new UnavailableError('superseded by a resend of the same attempt'));
    this.inFlight.set(id, request);
    if (meta.origin !== undefined) this.orphans.track(meta.origin);
    this.metrics.accepted.inc();
    void request.finished.then(() => {
      if (this.inFlight.get(id) === request) this.inFlight.delete(id);
    });
  }

  /**
   * A router's cancel stops only that router's work: the cancel names its origin, and an attempt
   * another router owns (same request id, after a client resend) is left alone. A cancel with the
   * attempt's reply subject stops only that attempt: another requester's request with the same
   * id through the same router is left alone too.
   */
  private onCancel(msg: ServiceMsg): void {
    try {
      const cancel = decodeCancel(msg.data);
      for (const request of this.inFlight.values()) {
        const { key } = request;
        if (key.requestId !== cancel.requestId || key.origin !== cancel.origin) continue;
        if (cancel.attempt !== undefined && key.attempt !== cancel.attempt) continue;
        if (cancel.reply !== undefined && key.reply !== cancel.reply) continue;
        request.cancel();
      }
      if (msg.reply) msg.respond();
    } catch (err) {
      this.log.warn({ err }, 'malformed cancel ignored');
      if (msg.reply) msg.respondError(400, toSwitchyardError(err).message);
    }
  }

  private cancelOrphans(origin: string): void {
    for (const request of this.inFlight.values()) {
      if (request.key.origin !== origin) continue;
      this.log.warn({ requestId: request.key.requestId, origin }, 'router gone: cancelling its request');
      this.metrics.orphansCancelled.inc();
      request.endEarly(new UnavailableError(`router ${origin} is gone`));
    }
  }

  /** Resolves when every request in flight now has ended, or after `ms`. */
  private async settled(ms: number): Promise<void> {
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    await Promise.race([Promise.all([...this.inFlight.values()].map((r) => r.finished)), timeout]);
    clearTimeout(timer);
  }

  private async drain(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.state = 'draining';
    this.follower?.stop();
    this.heartbeat.beat(); // routers stop sending new work at once
    await this.settled(this.options.drainGraceMs);
    for (const request of this.inFlight.values()) {
      // Hand over: a retryable error makes the router resume the request elsewhere from the
      // tokens it has delivered.
      request.endEarly(new UnavailableError(`replica ${this.id} is shutting down: resume elsewhere`));
    }
    await this.settled(HAND_OVER_GRACE_MS);
    this.state = this.failedBy === undefined ? 'stopped' : 'failed';
    this.heartbeat.beat(); // deregister: routers drop this replica now, not after missed beats
    this.heartbeat.stop();
    this.orphans.stop();
    clearInterval(this.keepaliveTimer);
    this.stopReconnectWatch?.();
    await this.metricsServer?.close();
    await this.service?.stop().catch(() => undefined);
    await this.engine.stop();
    await this.nc.drain().catch(() => undefined);
    this.resolveClosed();
  }
}

/** How long handed-over requests get to send their last message before the connection drains. */
const HAND_OVER_GRACE_MS = 1_000;
