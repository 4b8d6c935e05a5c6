/**
 * One request as a router owns it: attempts on replicas, forwarding of chunks to the client, and
 * exact failover. When an attempt's replica dies, stalls, answers no-responders or fails
 * retryably, the request resumes on another replica from the token ids already delivered to the
 * client (never from text), built by the one resume builder (`cluster/resume.ts`), with a new
 * attempt number; messages of older attempts arrive on closed inboxes and are never seen. The
 * client sees no gap and no duplicate, and with greedy decoding or the router-assigned seed the
 * text is the same as an uninterrupted run's.
 *
 * Attempts are numbered across the whole request: a client's resend says in `Sy-Attempt` where
 * its earlier routers stopped, so router attempts and client resends share one budget
 * (`maxAttempts`). An attempt that failed inside an engine (`engine_failed`) is retried on one
 * other replica at most, then the request ends with `engine_failed`, which nobody resends.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { writeRequestMeta, type RequestMeta } from '../cluster/headers.ts';
import { encodeGenerateRequest, type GenerateRequest } from '../cluster/messages/generate.ts';
import { encodeCancel, type End } from '../cluster/messages/stream.ts';
import { buildResume } from '../cluster/resume.ts';
import {
  openStream,
  type StreamEvent,
  type StreamFailure,
  type StreamHandle,
} from '../cluster/stream-requester.ts';
import type { StreamResponder } from '../cluster/stream-responder.ts';
import { replicaCancelSubject, replicaGenerateSubject } from '../cluster/subjects.ts';
import { timerDelay } from '../cluster/timers.ts';
import { GEN_AI_ATTRS, SWITCHYARD_ATTRS } from '../telemetry/attributes.ts';
import {
  BusyError,
  CancelledError,
  DeadlineExceededError,
  EngineFailedError,
  UnavailableError,
  VersionUnavailableError,
  type SwitchyardError,
} from '../errors/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { endSpan } from '../telemetry/propagation.ts';
import { context, type Context, type Span } from '@opentelemetry/api';
import type { Member, Membership } from './membership.ts';
import { place } from './placement.ts';
import { estimateRequestTokens } from './request-tokens.ts';
import type { FailoverReason, ModelInstruments, RequestCode, RouterMetrics } from './metrics.ts';
import type { RouteTrace } from './route-trace.ts';
import type { CompiledRouterOptions } from './options.ts';
import type { RoutingStrategy } from './strategies/strategy.ts';
import type { CaptureOutcome, RequestCapture } from './request-capture.ts';
import type { CompletionEvent } from '../cluster/messages/capture.ts';

/**
 * Engine failures of one request that its router retries elsewhere: one. A request that breaks
 * the engine of a second replica too ends with `engine_failed` (DESIGN.md invariant 8).
 */
export const ENGINE_FAILURE_RETRIES = 1;

/** How long a replica may take to ack: it acks on receipt, so this only catches a lost request. */
export const REPLICA_ACK_TIMEOUT_MS = 2_000;

/** What a routed request needs from its router. */
export interface RouterContext {
  readonly nc: NatsConnection;
  readonly id: string;
  readonly options: CompiledRouterOptions;
  /** The connection's inbox prefix: replicas' streams come back under it. */
  readonly inboxPrefix: string;
  readonly membership: Membership;
  readonly strategy: RoutingStrategy;
  readonly log: Logger;
  readonly metrics: RouterMetrics;
  /** An attempt of `request` now runs on `replicaId` (for failover when that replica dies). */
  attached(request: RoutedRequest, replicaId: string): void;
  detached(request: RoutedRequest, replicaId: string): void;
  /** The request is over (ended, failed or cancelled). */
  finished(request: RoutedRequest): void;
  /** Hands a captured request's completion event to the capture publisher (never waits). */
  captured(event: CompletionEvent, trace: Context): void;
}

interface Attempt {
  number: number;
  replicaId: string;
  /** Set right after the request is sent (openStream reports even early failures asynchronously). */
  handle?: StreamHandle;
  /** Tokens delivered before this attempt started. */
  deliveredBefore: number;
  /** The attempt's CLIENT span (its replica's span is a child). */
  span: Span;
}

/**
 * The model version a request is pinned to. `hard` when the request named it (its caller did, or
 * it is a resend that carries tokens): it runs on that version or not at all. A router's own pin
 * is soft until the first token: a request that has delivered none may start over on another
 * version when its own is gone.
 */
export interface VersionPin {
  version: string;
  hard: boolean;
}

/** The error of a request whose pinned version no replica serves any more. */
export function versionGone(model: string, version: string): VersionUnavailableError {
  return new VersionUnavailableError(
    `${model}@${version}, which this request started on, is served by no replica any more: its ` +
      'tokens cannot resume exactly on another version; send it again from the start',
  );
}

/** A request's life at its router, from admission to its one end or error. */
export class RoutedRequest {
  private readonly delivered: number[] = [];
  /** The number of the last attempt made (a client's resend starts past its earlier routers' attempts). */
  private lastAttempt: number;
  private readonly firstAttempt: number;
  private engineFailures = 0;
  private readonly excluded = new Set<string>();
  private current: Attempt | undefined;
  /** Settled max_tokens of this router's request (the first replica fills a default in when absent). */
  private maxTokens: number | undefined;
  private done = false;
  private sentFirstChunk = false;
  private readonly deadlineTimer: NodeJS.Timeout;
  private readonly instruments: ModelInstruments;
  private readonly admittedAt = performance.now();
  private lastChunkAt: number | undefined;
  /** The first attempt's replica, chosen at admission (where the pin came from). */
  private firstChoice: Member | undefined;

  constructor(
    private readonly ctx: RouterContext,
    readonly requestId: string,
    private readonly req: GenerateRequest,
    private readonly meta: RequestMeta,
    private readonly responder: StreamResponder,
    readonly deadline: number,
    private readonly trace: RouteTrace,
    private readonly pin: VersionPin,
    /** Present when the request is captured (isCaptured). */
    private readonly capture?: RequestCapture,
  ) {
    this.instruments = ctx.metrics.forModel(req.model);
    this.maxTokens = req.maxTokens;
    // The client's Sy-Attempt is the number this send's first attempt gets.
    this.firstAttempt = meta.attempt ?? 1;
    this.lastAttempt = this.firstAttempt - 1;
    this.deadlineTimer = setTimeout(
      () => this.fail(new DeadlineExceededError(`deadline passed after ${this.attemptsMade} attempt(s)`)),
      timerDelay(deadline - Date.now()),
    ).unref();
  }

  /** The replica of the running attempt, if any. */
  get replicaId(): string | undefined {
    return this.current?.replicaId;
  }

  /** Attempts made on replicas by this router and the routers before it. */
  private get attemptsMade(): number {
    return Math.max(1, this.lastAttempt);
  }

  /** Starts the first attempt, on `first` when given (admission placed it). */
  start(first?: Member): void {
    this.firstChoice = first;
    this.next(undefined);
  }

  /** The version this request runs on. */
  get version(): string {
    return this.pin.version;
  }

  /** Tokens the client holds: from this router's attempts and from the routers before it. */
  private get tokensHeld(): number {
    return this.delivered.length + (this.req.resumeTokenIds?.length ?? 0);
  }

  /** The replica running this request's attempt was declared dead. */
  replicaDied(replicaId: string, why: string): void {
    if (this.current?.replicaId !== replicaId) return;
    this.failover('replica_dead', new UnavailableError(`replica ${replicaId} died (${why})`));
  }

  /** This router's NATS connection reconnected: the running attempt's messages may have been lost. */
  connectionLost(): void {
    if (!this.current) return;
    this.failover(
      'reconnect',
      new UnavailableError('router reconnected to NATS: messages may have been lost'),
    );
  }

  /**
   * The client cancelled: stop the attempt and end the stream as cancelled. `resending`: the
   * client sends the request again elsewhere, so this is not the request's end (for capture).
   */
  cancel(reason: string, resending = false): void {
    if (this.done) return;
    const err = new CancelledError(reason);
    this.abandonCurrent(reason, err);
    this.responder.end({
      finishReason: 'cancelled',
      usage: { promptTokens: 0, completionTokens: this.delivered.length },
      attempts: this.attemptsMade,
    });
    this.close(err.code, 0, { kind: 'cancelled', final: !resending }, err);
  }

  /** Ends the request with an error (retryable ones make the client resend elsewhere). */
  fail(err: SwitchyardError): void {
    if (this.done) return;
    this.abandonCurrent(err.message, err);
    this.responder.error(err);
    // Final unless the client may resend it elsewhere: then the next router's event is the last word.
    const final =
      !err.retryable || this.lastAttempt >= this.ctx.options.maxAttempts || Date.now() >= this.deadline;
    this.close(err.code, 0, { kind: 'error', error: err, final }, err);
  }

  private next(lastError: SwitchyardError | undefined): void {
    if (this.done) return;
    if (Date.now() >= this.deadline) {
      return this.fail(new DeadlineExceededError(`deadline passed after ${this.attemptsMade} attempt(s)`));
    }
    if (this.lastAttempt >= this.ctx.options.maxAttempts) {
      return this.fail(
        finalError(lastError) ??
          new UnavailableError(
            `retry budget spent: ${this.lastAttempt} attempts of at most ${this.ctx.options.maxAttempts}`,
          ),
      );
    }
    const body = buildResume({
      request: this.req,
      delivered: this.delivered,
      maxTokens: this.maxTokens,
      seed: this.req.seed,
    });
    const member = this.choose(estimateRequestTokens(body));
    if (!member) {
      if (!this.ctx.membership.hasVersion(this.req.model, this.pin.version)) {
        if (this.tokensHeld > 0) return this.fail(versionGone(this.req.model, this.pin.version));
      }
      return this.fail(
        finalError(lastError) ??
          new UnavailableError(
            `no live replica serves ${this.req.model}@${this.pin.version} for this request`,
          ),
      );
    }
    body.version = this.pin.version;
    const number = ++this.lastAttempt;
    const headers = writeRequestMeta({
      ...this.meta,
      requestId: this.requestId,
      attempt: number,
      deadline: this.deadline,
      origin: this.ctx.id,
    });
    const attempt: Attempt = {
      number,
      replicaId: member.id,
      deliveredBefore: this.delivered.length,
      span: this.trace.attempt(number, member.id, headers),
    };
    this.current = attempt;
    this.capture?.attempt(number, this.pin.version);
    this.ctx.attached(this, member.id);
    attempt.handle = openStream(
      this.ctx.nc,
      replicaGenerateSubject(member.id),
      encodeGenerateRequest(body),
      headers,
      {
        onMessage: (event) => this.onEvent(attempt, event),
        ackTimeoutMs: REPLICA_ACK_TIMEOUT_MS,
        // From the ack: a replica keeps a queued request's stream alive with keepalives.
        idleTimeoutMs: this.ctx.options.stallTimeoutMs,
        deadline: this.deadline,
        inboxPrefix: this.ctx.inboxPrefix,
      },
    );
  }

  /**
   * The replica of the next attempt: one that has the pinned version loaded. A soft pin, on a
   * request that holds no tokens yet, moves to another version when none of its own can take it.
   */
  private choose(estimate: number): Member | undefined {
    const first = this.firstChoice;
    this.firstChoice = undefined;
    if (first !== undefined && first.hb.modelVersion === this.pin.version && !this.excluded.has(first.id)) {
      return first;
    }
    const { membership, strategy } = this.ctx;
    const pinned = place(
      membership.candidates(this.req.model, this.pin.version),
      this.excluded,
      estimate,
      strategy,
    );
    if (pinned !== undefined || this.pin.hard || this.tokensHeld > 0) return pinned;
    // A soft pin with no token delivered yet binds nothing the client holds: when no replica of
    // its version can take the attempt (gone, excluded after failing, or full), any version may.
    // A canary whose engine fails is then retried on stable, and the evidence still counts the
    // failover against the canary (the completion event keeps the arm it was admitted on).
    const other = place(membership.candidates(this.req.model, undefined), this.excluded, estimate, strategy);
    if (other !== undefined) this.pin.version = other.hb.modelVersion;
    return other;
  }

  private onEvent(attempt: Attempt, event: StreamEvent): void {
    if (this.done || this.current !== attempt) return; // an older attempt: ignored
    switch (event.kind) {
      case 'ack':
        if (this.maxTokens === undefined && event.ack.maxTokens !== undefined) {
          this.maxTokens = attempt.deliveredBefore + event.ack.maxTokens;
        }
        return;
      case 'chunk':
        return this.onChunk(attempt, event.chunk);
      case 'end':
        return this.onEnd(attempt, event.end);
      case 'error':
        return this.onError(event.error, event.failure);
    }
  }

  private onChunk(attempt: Attempt, chunk: { tokenIds: number[]; text: string; maxTokens?: number }): void {
    if (this.maxTokens === undefined && chunk.maxTokens !== undefined) {
      this.maxTokens = attempt.deliveredBefore + chunk.maxTokens;
    }
    const { tokenIds, text } = chunk;
    // The client's first chunk carries what it needs to resume us exactly: the seed and max_tokens.
    const first = this.sentFirstChunk
      ? {}
      : {
          ...(this.req.seed !== undefined ? { seed: this.req.seed } : {}),
          ...(this.maxTokens !== undefined ? { maxTokens: this.maxTokens } : {}),
          modelVersion: this.pin.version,
        };
    this.sentFirstChunk = true;
    this.responder.chunk({ tokenIds, text, attempt: attempt.number, ...first });
    this.capture?.chunk(tokenIds, text);
    this.delivered.push(...tokenIds);
    this.observeChunk(tokenIds.length);
  }

  private onEnd(attempt: Attempt, end: End): void {
    if (end.finishReason === 'cancelled') {
      // We did not ask (a cancel of ours closes the attempt first): the replica dropped the work.
      return this.failover(
        'unasked_cancel',
        new UnavailableError(`replica ${attempt.replicaId} ended the attempt as cancelled unasked`),
      );
    }
    this.detach(attempt);
    endSpan(attempt.span);
    this.responder.end({
      finishReason: end.finishReason,
      usage: {
        promptTokens: end.usage.promptTokens,
        completionTokens: attempt.deliveredBefore + end.usage.completionTokens,
      },
      attempt: attempt.number,
      attempts: this.attemptsMade,
      ...(end.modelVersion !== undefined ? { modelVersion: end.modelVersion } : {}),
      ...(end.text !== undefined ? { text: end.text } : {}),
    });
    const attemptResumed = (this.req.resumeTokenIds?.length ?? 0) + attempt.deliveredBefore > 0;
    this.close('ok', end.usage.promptTokens, { kind: 'end', end, attemptResumed });
  }

  private onError(err: SwitchyardError, failure: StreamFailure): void {
    if (err.code === 'engine_failed') {
      this.engineFailures++;
      if (this.engineFailures > ENGINE_FAILURE_RETRIES) return this.fail(engineGaveUp(this.engineFailures));
      return this.failover('engine_failed', err);
    }
    if (err.code === 'cancelled') {
      // Our own cancels close the attempt before they are sent: this one nobody here asked for.
      return this.failover(
        'unasked_cancel',
        new UnavailableError(`replica cancelled the attempt unasked: ${err.message}`),
      );
    }
    if (!err.retryable) return this.fail(err);
    return this.failover(failoverReason(err, failure), err);
  }

  private failover(reason: FailoverReason, err: SwitchyardError): void {
    const attempt = this.current;
    if (this.done || !attempt) return;
    context.with(this.trace.context, () =>
      this.ctx.log.warn(
        {
          requestId: this.requestId,
          replica: attempt.replicaId,
          attempt: attempt.number,
          reason,
          err: err.message,
        },
        'attempt failed; resuming elsewhere',
      ),
    );
    this.ctx.metrics.failedOver(reason);
    this.capture?.failover(attempt.number, attempt.replicaId, reason);
    this.trace.failover(attempt.replicaId, attempt.number, reason, this.delivered.length);
    this.excluded.add(attempt.replicaId);
    this.abandonCurrent(`failover: ${reason}`, err);
    // A replica answering busy is not broken: if every replica is busy the client hears busy.
    this.next(err.code === 'busy' ? new BusyError(err.message) : err);
  }

  /** Stops listening to the running attempt and tells its replica to stop work on it. */
  private abandonCurrent(reason: string, err: SwitchyardError): void {
    const attempt = this.current;
    if (!attempt) return;
    this.detach(attempt);
    endSpan(attempt.span, err);
    attempt.handle?.close();
    // The attempt's reply subject names exactly this attempt's work: another requester's request
    // with the same id (and attempt number) through this router is other work on the replica.
    const reply = attempt.handle?.inbox || undefined;
    try {
      this.ctx.nc.publish(
        replicaCancelSubject(attempt.replicaId),
        encodeCancel({
          requestId: this.requestId,
          origin: this.ctx.id,
          attempt: attempt.number,
          reason: reason.slice(0, 200),
          ...(reply !== undefined ? { reply } : {}),
        }),
      );
    } catch {
      // Connection closing: the replica's orphan watch frees the slot when our heartbeats stop.
    }
  }

  private detach(attempt: Attempt): void {
    if (this.current === attempt) this.current = undefined;
    this.ctx.detached(this, attempt.replicaId);
  }

  /** Time to first token, then the gap per token of each later chunk. */
  private observeChunk(tokens: number): void {
    const now = performance.now();
    if (this.lastChunkAt === undefined) this.instruments.firstToken((now - this.admittedAt) / 1_000);
    else if (tokens > 0) this.instruments.interToken((now - this.lastChunkAt) / 1_000 / tokens);
    this.lastChunkAt = now;
  }

  private close(
    code: RequestCode,
    promptTokens: number,
    outcome: CaptureOutcome,
    err?: SwitchyardError,
  ): void {
    this.done = true;
    if (this.capture) {
      this.ctx.captured(this.capture.event(outcome, this.attemptsMade, promptTokens), this.trace.context);
    }
    clearTimeout(this.deadlineTimer);
    const seconds = (performance.now() - this.admittedAt) / 1_000;
    this.instruments.finished(code, seconds, promptTokens, this.delivered.length);
    this.trace.span.setAttributes({
      [SWITCHYARD_ATTRS.attempt]: this.attemptsMade,
      [GEN_AI_ATTRS.usageOutputTokens]: this.delivered.length,
      ...(promptTokens > 0 ? { [GEN_AI_ATTRS.usageInputTokens]: promptTokens } : {}),
    });
    endSpan(this.trace.span, err);
    this.ctx.finished(this);
  }
}

/** The failover metric label of a retryable attempt failure, from its code and stream failure. */
function failoverReason(err: SwitchyardError, failure: StreamFailure): FailoverReason {
  if (failure === 'no_ack') return 'no_ack';
  if (failure === 'stalled') return 'stalled';
  return err.code === 'unavailable' ? 'unavailable' : 'error';
}

/**
 * What the client hears when no attempt is left: an engine failure's replica detail (onnxruntime
 * text) stays in our logs; everything else passes as it came.
 */
function finalError(lastError: SwitchyardError | undefined): SwitchyardError | undefined {
  if (lastError?.code === 'engine_failed') return engineGaveUp(1);
  return lastError;
}

function engineGaveUp(failures: number): EngineFailedError {
  return new EngineFailedError(
    `inference failed on ${failures} replica(s) with this request in the batch; it is not retried`,
  );
}
