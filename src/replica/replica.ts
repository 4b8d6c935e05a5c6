/**
 * The replica actor: one engine on one device, serving generate requests for its model over
 * NATS. It streams one chunk per decode step, announces itself with heartbeats that carry live
 * load and engine progress, registers as a NATS micro service ($SRV.PING/INFO/STATS), cancels
 * work whose router has gone, and drains on stop().
 */
import type { NatsConnection } from '@nats-io/nats-core';
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
} from '../cluster/subjects.ts';
import { EchoEngine } from '../engine/echo.ts';
import { Engine } from '../engine/engine.ts';
import type { ServingEngine } from '../engine/types.ts';
import {
  DeadlineExceededError,
  ModelNotFoundError,
  UnavailableError,
  toSwitchyardError,
} from '../errors/errors.ts';
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
  progress(`loading ${options.engine.modelDir} on ${options.engine.device ?? 'cpu'}…`);
  const engine = options.echo ? await EchoEngine.start(options.engine) : await Engine.start(options.engine);
  let nc: NatsConnection;
  try {
    nc = await connectNats({
      name: `replica-${options.id}`,
      ...options.nats,
      inboxPrefix: options.nats.inboxPrefix ?? actorInboxPrefix('replica', options.id),
    });
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

class ReplicaActor implements Replica {
  state: ReplicaState = 'starting';
  readonly closed: Promise<void>;
  /** Work by (origin, request id, attempt, reply subject): see {@link workKey}. */
  private readonly inFlight = new Map<string, ServedRequest>();
  private readonly serving: ServingContext;
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
    private readonly engine: ServingEngine,
    private readonly nc: NatsConnection,
    private readonly log: Logger,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.serving = {
      replicaId: options.id,
      log,
      modelVersion: engine.info.version,
      modelSha256: engine.info.sha256,
      modelName: `${engine.info.id}@${engine.info.version}`,
      logPrompts: options.logPrompts,
    };
    this.heartbeat = new HeartbeatPublisher(nc, options, engine, () => this.state);
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

  async start(progress: (line: string) => void): Promise<void> {
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
      this.checkServable(req, meta.deadline);
      // The engine tokenizes inside the request's span, so its span is a child of this one.
      const reply = msg.reply;
      context.with(trace.context, () => this.serve(req, meta, reply, responder, trace));
    } catch (err) {
      const error = toSwitchyardError(err);
      this.metrics.refused.inc({ code: error.code });
      endSpan(trace.span, error);
      responder.error(error);
    }
  }

  private checkServable(req: GenerateRequest, deadline: number | undefined): void {
    const { info } = this.engine;
    if (this.state !== 'running') {
      throw new UnavailableError(`replica ${this.id} is ${this.state}: retry on another replica`);
    }
    if (req.model !== info.id || (req.version !== undefined && req.version !== info.version)) {
      const wanted = req.version === undefined ? req.model : `${req.model}@${req.version}`;
      throw new ModelNotFoundError(`replica ${this.id} serves ${info.id}@${info.version}, not ${wanted}`);
    }
    if (deadline !== undefined && deadline <= Date.now()) {
      throw new DeadlineExceededError('deadline passed before the replica received the request');
    }
  }

  private serve(
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
    const stream = this.engine.stream(req, { signal: controller.signal });
    const request = new ServedRequest(
      key,
      this.serving,
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
