/**
 * The router actor: the cluster's front door. Many routers share `sy.v1.generate` as a queue
 * group and hold only soft state — membership from replica heartbeats, and their own in-flight
 * requests — so any router can die and clients resend elsewhere. Admission answers at once:
 * `busy` when this router or every live replica of the model is full, `unavailable` when none is
 * live, `model_not_found` when no replica ever served the model.
 *
 * A request belongs to the identity that sent it: its reply subject's prefix (the inbox prefix
 * and connection; permissions keep others from subscribing to it). Requests are keyed by
 * (requester, request id), so two requesters that use the same id hold two independent requests:
 * a resend supersedes only its own requester's stream, and a cancel is honoured only with the
 * request's reply subject in it, which only the requester knows. A stranger who learns a live
 * request's id (a shared credential, an insecure cluster) can neither refuse, cut nor cancel it.
 */
import { randomUUID } from 'node:crypto';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { connectNats } from '../cluster/connection.ts';
import { readRequestMeta } from '../cluster/headers.ts';
import { decodeGenerateRequest, type GenerateRequest } from '../cluster/messages/generate.ts';
import { encodeRouterHeartbeat } from '../cluster/messages/heartbeat.ts';
import { decodeCancel } from '../cluster/messages/stream.ts';
import { heartbeatStateOf, type ActorState } from '../cluster/actor-state.ts';
import { afterPendingIo } from '../cluster/heartbeat-monitor.ts';
import { watchReconnects } from '../cluster/reconnects.ts';
import { StreamResponder } from '../cluster/stream-responder.ts';
import {
  ALL_REPLICA_HEARTBEATS,
  GENERATE_SUBJECT,
  ROUTER_QUEUE_GROUP,
  actorInboxPrefix,
  roleInboxes,
  routerCancelSubject,
  routerHeartbeatSubject,
} from '../cluster/subjects.ts';
import { isSampled } from '../cluster/messages/params.ts';
import { randomSeed } from '../cluster/messages/params.ts';
import { BusyError, ModelNotFoundError, UnavailableError, toSwitchyardError } from '../errors/errors.ts';
import { createLogger, type Logger } from '../telemetry/logger.ts';
import { Membership, MIN_MEMBERSHIP_TICK_MS, type Member, type MembershipChange } from './membership.ts';
import { place } from './placement.ts';
import { estimateRequestTokens } from './request-tokens.ts';
import { compileRouterOptions, type CompiledRouterOptions, type RouterOptions } from './options.ts';
import { RoutedRequest, versionGone, type RouterContext } from './routed-request.ts';
import { createStrategy } from './strategies/index.ts';
import { serveMetrics, type MetricsServer } from '../telemetry/prometheus.ts';
import { endSpan } from '../telemetry/propagation.ts';
import { RouterMetrics } from './metrics.ts';
import { startRouteTrace } from './route-trace.ts';
import type { RoutingStrategy } from './strategies/strategy.ts';
import { CaptureMetrics, CapturePublisher } from '../capture/publisher.ts';
import { isCaptured } from '../capture/options.ts';
import { redactCompletion } from '../capture/redaction.ts';
import { BRIDGE_REQUESTER, type CompletionEvent } from '../cluster/messages/capture.ts';
import { RequestCapture } from './request-capture.ts';
import type { SwitchyardError } from '../errors/errors.ts';
import type { RequestMeta } from '../cluster/headers.ts';
import { context, trace, type Context, type Span } from '@opentelemetry/api';
import { SWITCHYARD_ATTRS } from '../telemetry/attributes.ts';
import type { RequestRollout } from '../rollout/types.ts';
import { watchRollouts, type AppliedRollout, type RolloutWatch } from './rollouts.ts';
import { armOfVersion, placeSplit, splits } from './rollout-split.ts';

/** Lifecycle of a router (the one actor lifecycle). */
export type RouterState = ActorState;

/**
 * How long a new router listens to heartbeats before it takes requests, so that its first
 * answers are not `model_not_found` for models whose replicas it has not heard from yet.
 */
export const MEMBERSHIP_WARMUP_MS = 600;

/** How long a stopping router waits for JetStream to acknowledge the events it still holds. */
export const CAPTURE_CLOSE_GRACE_MS = 2_000;

/** A bridge's reply inboxes start so (see actorInboxPrefix). */
const BRIDGE_INBOXES = roleInboxes('bridge').slice(0, -1);

/** The `model` label of a request refused before its body could be read. */
const UNKNOWN_MODEL = 'unknown';

/** The requester's identity in a reply subject: all but its last token (`<inbox prefix>.<nuid>`). */
export function requesterOf(reply: string): string {
  const dot = reply.lastIndexOf('.');
  return dot < 0 ? reply : reply.slice(0, dot);
}

/**
 * The map key of a request: (requester, request id). A space separates them because neither a
 * subject nor a request id may contain one.
 */
export function requestKey(requester: string, requestId: string): string {
  return `${requester} ${requestId}`;
}

/** A running router. */
export interface Router {
  readonly id: string;
  readonly state: RouterState;
  /** Stops taking requests, finishes in-flight ones within the grace period, deregisters. Idempotent. */
  stop(): Promise<void>;
  readonly closed: Promise<void>;
}

/** Starts a router and resolves once it takes requests. */
export async function startRouter(opts: RouterOptions): Promise<Router> {
  const options = compileRouterOptions(opts);
  const log = createLogger({ role: 'router', id: options.id });
  const inboxPrefix = options.nats.inboxPrefix ?? actorInboxPrefix('router', options.id);
  const nc = await connectNats({ name: `router-${options.id}`, ...options.nats, inboxPrefix });
  const router = new RouterActor(options, nc, log, inboxPrefix);
  await router.start();
  return router;
}

class RouterActor implements Router, RouterContext {
  state: RouterState = 'starting';
  readonly closed: Promise<void>;
  readonly membership: Membership;
  readonly strategy: RoutingStrategy;
  readonly metrics: RouterMetrics;
  /** Requests in flight by {@link requestKey}: (requester, request id). */
  private readonly requests = new Map<string, RoutedRequest>();
  /** The reply subject of each request: who may resend or cancel it, and half its key. */
  private readonly replies = new WeakMap<RoutedRequest, string>();
  private readonly byReplica = new Map<string, Set<RoutedRequest>>();
  private readonly subs: Subscription[] = [];
  private frontDoor: Subscription | undefined;
  private metricsServer: MetricsServer | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopReconnectWatch: (() => void) | undefined;
  /** Called once the last in-flight request finished, while a drain waits for that. */
  private onIdle: (() => void) | undefined;
  private stopping: Promise<void> | undefined;
  private resolveClosed!: () => void;
  private readonly capture: CapturePublisher | undefined;
  /** Each model's rollout as the watch last delivered it (models without one are absent). */
  private readonly rollouts = new Map<string, AppliedRollout>();
  private rolloutWatch: RolloutWatch | undefined;

  constructor(
    readonly options: CompiledRouterOptions,
    readonly nc: NatsConnection,
    readonly log: Logger,
    readonly inboxPrefix: string,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.membership = new Membership(
      { ...options, tickMs: Math.max(MIN_MEMBERSHIP_TICK_MS, Math.floor(options.heartbeatIntervalMs / 2)) },
      log,
    );
    this.strategy = createStrategy(options.strategy);
    this.metrics = new RouterMetrics({
      id: options.id,
      membership: this.membership,
      inFlight: () => this.requests.size,
    });
    if (options.capture.enabled) {
      this.capture = new CapturePublisher({
        nc,
        options: options.capture,
        metrics: new CaptureMetrics(this.metrics.registry, () => this.capture?.size ?? 0),
        log,
        ...(options.capture.redact ? { prepare: redactCompletion } : {}),
      });
    }
    void nc.closed().then((err) => {
      if (this.state !== 'stopped') {
        log.error({ err }, 'NATS connection closed; stopping');
        void this.stop();
      }
    });
  }

  get id(): string {
    return this.options.id;
  }

  async start(): Promise<void> {
    this.subs.push(
      this.nc.subscribe(ALL_REPLICA_HEARTBEATS, {
        callback: (err, msg) => {
          if (!err) this.onHeartbeat(msg);
        },
      }),
      this.nc.subscribe(routerCancelSubject(this.id), {
        callback: (err, msg) => {
          if (!err) this.onCancel(msg);
        },
      }),
    );
    this.timers.push(
      setInterval(
        () => afterPendingIo(() => this.applyChanges(this.membership.tick(Date.now()))),
        this.membership.tickMs,
      ).unref(),
      setInterval(() => this.beat(), this.options.heartbeatIntervalMs).unref(),
    );
    this.stopReconnectWatch = watchReconnects(this.nc, () => {
      this.log.warn({ inFlight: this.requests.size }, 'NATS reconnected: failing over every running attempt');
      for (const request of [...this.requests.values()]) request.connectionLost();
    });
    // Started before the warm-up, so that the first requests are split as every other router splits them.
    this.rolloutWatch = watchRollouts({
      nc: this.nc,
      log: this.log,
      onChange: (model, rollout, revision) => this.applyRollout(model, rollout, revision),
    });
    this.beat();
    await new Promise((resolve) => setTimeout(resolve, MEMBERSHIP_WARMUP_MS));
    this.frontDoor = this.nc.subscribe(GENERATE_SUBJECT, {
      queue: ROUTER_QUEUE_GROUP,
      callback: (err, msg) => {
        if (!err) this.onGenerate(msg);
      },
    });
    if (this.options.metricsPort > 0) {
      this.metricsServer = await serveMetrics(
        this.options.metricsPort,
        this.metrics.registry,
        this.options.metricsHost,
      );
    }
    // Ready means subscribed: the server has our subscriptions before anyone is told we serve.
    await this.nc.flush();
    this.state = 'running';
    this.beat();
    this.log.info({ strategy: this.strategy.name, metrics: this.metricsServer?.url }, 'router ready');
  }

  stop(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  // RouterContext
  attached(request: RoutedRequest, replicaId: string): void {
    let set = this.byReplica.get(replicaId);
    if (!set) this.byReplica.set(replicaId, (set = new Set()));
    set.add(request);
    const member = this.membership.get(replicaId);
    if (member) member.inFlight = set.size;
  }

  detached(request: RoutedRequest, replicaId: string): void {
    const set = this.byReplica.get(replicaId);
    set?.delete(request);
    // Replica ids come and go (restarts under new ids): keep no empty set behind.
    if (set?.size === 0) this.byReplica.delete(replicaId);
    const member = this.membership.get(replicaId);
    if (member) member.inFlight = set?.size ?? 0;
  }

  captured(event: CompletionEvent, trace?: Context): void {
    this.capture?.offer(event, trace);
  }

  finished(request: RoutedRequest): void {
    const key = this.keyOf(request);
    if (this.requests.get(key) === request) this.requests.delete(key);
    if (this.requests.size === 0) this.onIdle?.();
  }

  /** The {@link requestKey} of a request this router admitted. */
  private keyOf(request: RoutedRequest): string {
    return requestKey(requesterOf(this.replies.get(request) ?? ''), request.requestId);
  }

  /** Resolves when no request is in flight, or after `ms`. */
  private idle(ms: number): Promise<void> {
    if (this.requests.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.onIdle = () => {
        this.onIdle = undefined;
        done();
      };
    });
  }

  /** A rollout change from the watch: new requests of `model` split by it from now on. */
  private applyRollout(model: string, rollout: AppliedRollout | undefined, revision: number): void {
    if (rollout === undefined) this.rollouts.delete(model);
    else this.rollouts.set(model, rollout);
    this.metrics.rolloutApplied(model, rollout?.canary, rollout?.weight ?? 0);
    this.log.info(
      rollout === undefined
        ? { model, revision }
        : { model, rollout: rollout.id, weight: rollout.weight, state: rollout.state, revision },
      rollout === undefined
        ? `rollout of ${model} gone: no split`
        : `rollout ${rollout.id} of ${model}: ${rollout.weight}% to ${rollout.canary} (${rollout.state})`,
    );
    this.options.onRolloutApplied?.(model, revision);
  }

  /** Malformed heartbeats and those whose subject names another id are counted and logged by the monitor. */
  private onHeartbeat(msg: Msg): void {
    const change = this.membership.receive(msg.subject, msg.data, Date.now());
    if (change) this.applyChanges([change]);
  }

  private applyChanges(changes: MembershipChange[]): void {
    for (const change of changes) {
      this.log.info(change, `replica ${change.id}: ${change.from} -> ${change.to}`);
      if (change.to !== 'dead') continue;
      this.metrics.replicaDeclaredDead();
      for (const request of [...(this.byReplica.get(change.id) ?? [])]) {
        request.replicaDied(change.id, change.reason ?? 'dead');
      }
    }
  }

  private onGenerate(msg: Msg): void {
    if (!msg.reply) return;
    let responder = new StreamResponder(this.nc, msg.reply);
    const trace = startRouteTrace(msg.headers, this.id, msg.data.length);
    let model = UNKNOWN_MODEL;
    let refused: { req: GenerateRequest; requestId: string; meta: RequestMeta } | undefined;
    try {
      const meta = readRequestMeta(msg.headers);
      const requestId = meta.requestId ?? randomUUID();
      responder = new StreamResponder(this.nc, msg.reply, { requestId });
      const req = decodeGenerateRequest(msg.data);
      model = req.model;
      trace.describe(req, requestId);
      refused = { req, requestId, meta };
      const { first, rollout } = this.admit(req, requestId);
      refused = undefined;
      if (rollout !== undefined) {
        this.metrics.rolloutRequest(req.model, rollout.arm);
        trace.span.setAttributes({
          [SWITCHYARD_ATTRS.rolloutId]: rollout.id,
          [SWITCHYARD_ATTRS.rolloutArm]: rollout.arm,
        });
      }
      if (isSampled(req) && req.seed === undefined) req.seed = randomSeed();
      // A resend of a request this router still owns for this requester (its client lost track of
      // us): the new stream replaces the old one, which nobody listens to any more. The same id
      // from another requester is another request: it never touches this one.
      const key = requestKey(requesterOf(msg.reply), requestId);
      this.requests.get(key)?.fail(new UnavailableError('superseded by a resend of the same request'));
      const deadline = meta.deadline ?? Date.now() + this.options.requestTimeoutMs;
      const capture = this.captureOf(req, requestId, meta, msg.reply, trace.span, rollout);
      // The router's own fields stay here: a replica needs no caller metadata.
      const forwarded = { ...req };
      delete forwarded.metadata;
      // Pinned at admission: the version of the replica placement picks (or the one the request
      // names). The ack tells the client, whose resends then name it.
      const pin = { version: req.version ?? first.hb.modelVersion, hard: req.version !== undefined };
      const request = new RoutedRequest(
        this,
        requestId,
        forwarded,
        meta,
        responder,
        deadline,
        trace,
        pin,
        capture,
      );
      this.requests.set(key, request);
      this.replies.set(request, msg.reply);
      responder.ack({
        by: this.id,
        ...(req.seed !== undefined ? { seed: req.seed } : {}),
        modelVersion: pin.version,
      });
      request.start(first);
    } catch (err) {
      const error = toSwitchyardError(err);
      // Only models the cluster serves become label values: a client's typo must not mint series.
      this.metrics.refused(this.membership.known(model, undefined) ? model : UNKNOWN_MODEL, error.code);
      endSpan(trace.span, error);
      responder.error(error);
      if (refused !== undefined) this.captureRefusal(refused, error, msg.reply, trace.span);
    }
  }

  /** The capture record of an admitted request, when this router captures it. */
  private captureOf(
    req: GenerateRequest,
    requestId: string,
    meta: RequestMeta,
    reply: string,
    span: Span,
    rollout?: RequestRollout,
  ): RequestCapture | undefined {
    if (this.capture === undefined || !isCaptured(this.options.capture, req.model, requestId))
      return undefined;
    // Only a bridge may say which API key sent a request: clients cannot publish from its inboxes.
    const fromBridge = reply.startsWith(BRIDGE_INBOXES);
    const keyId = meta.keyId !== undefined && fromBridge ? meta.keyId : undefined;
    return new RequestCapture({
      requestId,
      requester: fromBridge ? BRIDGE_REQUESTER : requesterOf(reply),
      router: this.id,
      req,
      ...(keyId !== undefined ? { keyId } : {}),
      text: this.options.capture.text,
      span,
      ...(rollout !== undefined ? { rollout } : {}),
    });
  }

  /** A request refused at admission (busy, unavailable, not found) is captured too: it reached a router. */
  private captureRefusal(
    refused: { req: GenerateRequest; requestId: string; meta: RequestMeta },
    error: SwitchyardError,
    reply: string,
    span: Span,
  ): void {
    const capture = this.captureOf(refused.req, refused.requestId, refused.meta, reply, span);
    if (capture === undefined) return;
    capture.attempt(Math.max(0, (refused.meta.attempt ?? 1) - 1), undefined);
    // A refusal the client may resend (busy, unavailable) is provisional, like any retryable end.
    this.captured(
      capture.event({ kind: 'error', error, final: !error.retryable }, refused.meta.attempt ?? 1, 0),
      trace.setSpan(context.active(), span),
    );
  }

  /**
   * Throws the typed refusal when the request cannot be placed now; else returns the replica
   * its first attempt goes to (its version is the request's pin) and, while a rollout of the
   * model is live, the arm it is on: a request that names no version is split by its id
   * (rollout-split.ts), one that names a version is on that version's arm.
   */
  private admit(req: GenerateRequest, requestId: string): { first: Member; rollout?: RequestRollout } {
    const { model, version } = req;
    if (this.state !== 'running') throw new UnavailableError(`router ${this.id} is ${this.state}`);
    if (this.requests.size >= this.options.maxInFlight) {
      throw new BusyError(
        `router ${this.id} has ${this.requests.size} requests in flight (max ${this.options.maxInFlight})`,
      );
    }
    const candidates = this.membership.candidates(model, version);
    const wanted = version === undefined ? model : `${model}@${version}`;
    if (candidates.length === 0) {
      const resumed = (req.resumeTokenIds?.length ?? 0) > 0;
      if (
        version !== undefined &&
        resumed &&
        this.membership.candidates(model, undefined).length > 0 &&
        !this.membership.hasVersion(model, version)
      ) {
        throw versionGone(model, version);
      }
      if (this.membership.known(model, version) || this.membership.all().length === 0) {
        throw new UnavailableError(`no live replica serves ${wanted}`);
      }
      throw new ModelNotFoundError(`model ${wanted} is not served by this cluster`);
    }
    // Only full queues refuse: a replica short of token budget still queues the request (its
    // queue is bounded), and routing prefers replicas whose budget fits (RoutedRequest.choose).
    const estimate = estimateRequestTokens(req);
    const rollout = this.rollouts.get(model);
    if (version === undefined && splits(rollout)) {
      const split = placeSplit(rollout, requestId, this.membership, estimate, this.strategy);
      if (split !== undefined) return split;
    } else {
      const first = place(candidates, NO_EXCLUSIONS, estimate, this.strategy);
      if (first !== undefined) {
        const arm = version === undefined ? undefined : armOfVersion(rollout, version);
        return arm === undefined ? { first } : { first, rollout: arm };
      }
    }
    throw new BusyError(`every replica of ${wanted} is full (${candidates.length} live); retry later`);
  }

  private onCancel(msg: Msg): void {
    try {
      const cancel = decodeCancel(msg.data);
      // The reply subject names the requester (half the key) and proves the cancel comes from it.
      const request =
        cancel.reply === undefined
          ? undefined
          : this.requests.get(requestKey(requesterOf(cancel.reply), cancel.requestId));
      if (request !== undefined && cancel.reply === this.replies.get(request)) {
        request.cancel(cancel.reason ?? 'cancelled by the client', cancel.resending === true);
      } else if (request !== undefined || cancel.reply === undefined) {
        // Not from the requester (or from a client that predates the proof): no stream is touched.
        this.log.warn({ requestId: cancel.requestId }, "cancel without the request's reply subject ignored");
      }
      if (msg.reply) msg.respond();
    } catch (err) {
      this.log.warn({ err: toSwitchyardError(err).message }, 'malformed cancel ignored');
    }
  }

  private beat(): void {
    if (this.nc.isClosed()) return;
    try {
      this.nc.publish(
        routerHeartbeatSubject(this.id),
        encodeRouterHeartbeat({
          id: this.id,
          state: heartbeatStateOf(this.state),
          inFlight: this.requests.size,
          sentAt: Date.now(),
          intervalMs: this.options.heartbeatIntervalMs,
        }),
      );
    } catch {
      // Closing: replicas notice our silence.
    }
  }

  private async drain(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.state = 'draining';
    // Drain, not unsubscribe: requests the server already routed to us are answered `unavailable`
    // (the client resends at once) instead of waiting out the client's ack timeout.
    const frontDoorDrained = this.frontDoor?.drain().catch(() => undefined);
    this.beat();
    await this.idle(this.options.drainGraceMs);
    for (const request of [...this.requests.values()]) {
      // Retryable: the client resends to another router with the tokens it holds.
      request.fail(new UnavailableError(`router ${this.id} is shutting down: resend elsewhere`));
    }
    await frontDoorDrained;
    this.state = 'stopped';
    this.beat();
    this.stopReconnectWatch?.();
    this.rolloutWatch?.stop();
    // What is still buffered gets the rest of the grace to reach JetStream (then counted as dropped).
    await this.capture?.close(CAPTURE_CLOSE_GRACE_MS);
    for (const timer of this.timers) clearInterval(timer);
    for (const sub of this.subs) sub.unsubscribe();
    await this.metricsServer?.close();
    await this.nc.drain().catch(() => undefined);
    this.resolveClosed();
  }
}

/** Admission places among all candidates. */
const NO_EXCLUSIONS: ReadonlySet<string> = new Set();
