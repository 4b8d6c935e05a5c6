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
import { StreamResponder } from '../cluster/stream.ts';
import { replicaCancelSubject, replicaFaultSubject, replicaGenerateSubject } from '../cluster/subjects.ts';
import { EchoEngine } from '../engine/echo.ts';
import { Engine } from '../engine/engine.ts';
import type { ServingEngine } from '../engine/types.ts';
import {
  DeadlineExceededError,
  ModelNotFoundError,
  UnavailableError,
  toSwitchyardError,
  type SwitchyardError,
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
import { describeRequest, endRequestTrace, startRequestTrace, type RequestTrace } from './request-trace.ts';

/** Lifecycle of a replica. */
export type ReplicaState = 'starting' | 'ready' | 'draining' | 'stopped' | 'failed';

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

/** One request being served. */
interface InFlight {
  requestId: string;
  attempt: number;
  origin: string | undefined;
  startedAt: number;
  controller: AbortController;
  responder: StreamResponder;
  /** Set when the replica ends the request itself (deadline, orphan, hand-over). */
  endWith?: SwitchyardError;
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
    nc = await connectNats({ name: `replica-${options.id}`, ...options.nats });
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
  private readonly inFlight = new Map<string, InFlight>();
  private readonly heartbeat: HeartbeatPublisher;
  private readonly orphans: OrphanWatch;
  private service: Service | undefined;
  private metricsServer: MetricsServer | undefined;
  private readonly metrics: ReplicaMetrics;
  private stopping: Promise<void> | undefined;
  private resolveClosed!: () => void;

  constructor(
    private readonly options: CompiledReplicaOptions,
    private readonly engine: ServingEngine,
    private readonly nc: NatsConnection,
    private readonly log: Logger,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.heartbeat = new HeartbeatPublisher(nc, options, engine, () => this.state);
    this.orphans = new OrphanWatch(nc, options.orphanTimeoutMs, (origin) => this.cancelOrphans(origin));
    this.metrics = new ReplicaMetrics({
      id: options.id,
      engine,
      heartbeatsSent: () => this.heartbeat.sent,
    });
    void engine.failed.then((err) => {
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
      this.metricsServer = await serveMetrics(this.options.metricsPort, this.metrics.registry);
      progress(`metrics on http://127.0.0.1:${this.metricsServer.port}/metrics`);
    }
    this.state = 'ready';
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
      context.with(trace.context, () => this.serve(req, meta, responder, trace));
    } catch (err) {
      const error = toSwitchyardError(err);
      this.metrics.refused.inc({ code: error.code });
      endSpan(trace.span, error);
      responder.error(error);
    }
  }

  private checkServable(req: GenerateRequest, deadline: number | undefined): void {
    const { info } = this.engine;
    if (this.state !== 'ready') {
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
    meta: { requestId?: string; attempt?: number; origin?: string; deadline?: number },
    responder: StreamResponder,
    trace: RequestTrace,
  ): void {
    const controller = new AbortController();
    const stream = this.engine.stream(req, { signal: controller.signal }); // throws invalid_request / busy at once
    const requestId = meta.requestId ?? `anon-${Math.random().toString(36).slice(2)}`;
    const attempt = meta.attempt ?? 1;
    const key = `${requestId}/${attempt}`;
    const entry: InFlight = {
      requestId,
      attempt,
      origin: meta.origin,
      startedAt: Date.now(),
      controller,
      responder,
    };
    this.inFlight.get(key)?.controller.abort(); // a duplicate attempt replaces the old one
    this.inFlight.set(key, entry);
    if (meta.origin !== undefined) this.orphans.track(meta.origin);
    this.metrics.accepted.inc();
    const deadlineTimer =
      meta.deadline === undefined
        ? undefined
        : setTimeout(
            () => this.endEarly(entry, new DeadlineExceededError('deadline passed during generation')),
            meta.deadline - Date.now(),
          ).unref();
    void (async () => {
      try {
        // max_tokens is known once the engine has tokenized the prompt (errors then end the stream).
        const { maxTokens } = await stream.settled;
        responder.ack({ by: this.id, seed: stream.seed, maxTokens });
        let first = true;
        let text = '';
        for await (const chunk of stream) {
          responder.chunk(first && stream.seed !== undefined ? { ...chunk, seed: stream.seed } : chunk);
          first = false;
          if (this.options.logPrompts) text += chunk.text;
        }
        const end = await stream.end;
        if (entry.endWith) throw entry.endWith;
        // Until the wire carries the end's own text, it goes out as a last chunk, as before.
        if (end.text) responder.chunk({ tokenIds: [], text: end.text });
        responder.end({
          finishReason: end.finishReason,
          usage: end.usage,
          modelVersion: this.engine.info.version,
        });
        endRequestTrace(trace, stream.timings, {
          end,
          model: `${this.engine.info.id}@${this.engine.info.version}`,
        });
        const done = { requestId, attempt, finishReason: end.finishReason, usage: end.usage };
        context.with(trace.context, () => {
          if (!this.options.logPrompts) return this.log.debug(done, 'request done');
          const asked =
            req.messages === undefined
              ? { prompt: req.prompt ?? req.promptTokenIds }
              : { messages: req.messages };
          this.log.info({ ...done, ...asked, text }, 'request done');
        });
      } catch (err) {
        const error = entry.endWith ?? toSwitchyardError(err);
        responder.error(error);
        endRequestTrace(trace, stream.timings, { error });
        const level = error.code === 'cancelled' ? 'debug' : 'info'; // clients leave all the time
        context.with(trace.context, () =>
          this.log[level](
            { requestId, attempt, code: error.code, err: error.message },
            'request ended with an error',
          ),
        );
      } finally {
        clearTimeout(deadlineTimer);
        if (this.inFlight.get(key) === entry) this.inFlight.delete(key);
      }
    })();
  }

  private onCancel(msg: ServiceMsg): void {
    try {
      const cancel = decodeCancel(msg.data);
      for (const entry of this.inFlight.values()) {
        if (entry.requestId !== cancel.requestId) continue;
        if (cancel.attempt !== undefined && entry.attempt !== cancel.attempt) continue;
        entry.controller.abort();
      }
      if (msg.reply) msg.respond();
    } catch (err) {
      this.log.warn({ err }, 'malformed cancel ignored');
      if (msg.reply) msg.respondError(400, toSwitchyardError(err).message);
    }
  }

  /** Ends a request on the replica's own initiative with a typed error (the end follows from the engine). */
  private endEarly(entry: InFlight, err: SwitchyardError): void {
    entry.endWith ??= err;
    entry.controller.abort();
  }

  private cancelOrphans(origin: string): void {
    for (const entry of this.inFlight.values()) {
      if (entry.origin !== origin) continue;
      this.log.warn({ requestId: entry.requestId, origin }, 'router gone: cancelling its request');
      this.metrics.orphansCancelled.inc();
      this.endEarly(entry, new UnavailableError(`router ${origin} is gone`));
    }
  }

  private async drain(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'draining';
    this.heartbeat.beat(); // routers stop sending new work at once
    const deadline = Date.now() + this.options.drainGraceMs;
    while (this.inFlight.size > 0 && Date.now() < deadline) await sleep(20);
    for (const entry of this.inFlight.values()) {
      // Hand over: a retryable error makes the router resume the request elsewhere from the
      // tokens it has delivered.
      this.endEarly(entry, new UnavailableError(`replica ${this.id} is shutting down: resume elsewhere`));
    }
    while (this.inFlight.size > 0 && Date.now() < deadline + 1_000) await sleep(10);
    this.state = 'stopped';
    this.heartbeat.beat(); // deregister: routers drop this replica now, not after missed beats
    this.heartbeat.stop();
    this.orphans.stop();
    await this.metricsServer?.close();
    await this.service?.stop().catch(() => undefined);
    await this.engine.stop();
    await this.nc.drain().catch(() => undefined);
    this.resolveClosed();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
