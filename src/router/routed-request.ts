/**
 * One request as a router owns it: attempts on replicas, forwarding of chunks to the client, and
 * exact failover. When an attempt's replica dies, stalls, answers no-responders or fails
 * retryably, the request resumes on another replica from the token ids already delivered to the
 * client (never from text), with the remaining max_tokens and a new attempt number; messages of
 * older attempts arrive on closed inboxes and are never seen. The client sees no gap and no
 * duplicate, and with greedy decoding or the router-assigned seed the text is the same as an
 * uninterrupted run's.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { writeRequestMeta, type RequestMeta } from '../cluster/headers.ts';
import { encodeGenerateRequest, type GenerateRequest } from '../cluster/messages/generate.ts';
import { encodeCancel } from '../cluster/messages/stream.ts';
import { openStream, type StreamEvent, type StreamHandle, type StreamResponder } from '../cluster/stream.ts';
import { replicaCancelSubject, replicaGenerateSubject } from '../cluster/subjects.ts';
import { GEN_AI_ATTRS, SWITCHYARD_ATTRS } from '../telemetry/attributes.ts';
import {
  BusyError,
  CancelledError,
  DeadlineExceededError,
  UnavailableError,
  type SwitchyardError,
} from '../errors/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { endSpan } from '../telemetry/propagation.ts';
import { context, type Span } from '@opentelemetry/api';
import { isFull, type Member, type Membership } from './membership.ts';
import type { FailoverReason, ModelInstruments, RequestCode, RouterMetrics } from './metrics.ts';
import type { RouteTrace } from './route-trace.ts';
import type { CompiledRouterOptions } from './options.ts';
import type { RoutingStrategy } from './strategies/strategy.ts';

/** How long a replica may take to ack: it acks on receipt, so this only catches a lost request. */
export const REPLICA_ACK_TIMEOUT_MS = 2_000;

/** What a routed request needs from its router. */
export interface RouterContext {
  readonly nc: NatsConnection;
  readonly id: string;
  readonly options: CompiledRouterOptions;
  readonly membership: Membership;
  readonly strategy: RoutingStrategy;
  readonly log: Logger;
  readonly metrics: RouterMetrics;
  /** An attempt of `request` now runs on `replicaId` (for failover when that replica dies). */
  attached(request: RoutedRequest, replicaId: string): void;
  detached(request: RoutedRequest, replicaId: string): void;
  /** The request is over (ended, failed or cancelled). */
  finished(request: RoutedRequest): void;
}

interface Attempt {
  number: number;
  replicaId: string;
  /** Set right after the request is sent (openStream reports even early failures asynchronously). */
  handle?: StreamHandle;
  /** Tokens delivered before this attempt started. */
  deliveredBefore: number;
  stallTimer?: NodeJS.Timeout;
  /** The attempt's CLIENT span (its replica's span is a child). */
  span: Span;
}

/** A request's life at its router, from admission to its one end or error. */
export class RoutedRequest {
  private readonly delivered: number[] = [];
  private attempts = 0;
  private readonly excluded = new Set<string>();
  private current: Attempt | undefined;
  /** Settled max_tokens counted from this router's first attempt (the replica fills a default in). */
  private maxTokens: number | undefined;
  private done = false;
  private sentSeed = false;
  private readonly deadlineTimer: NodeJS.Timeout;
  private readonly instruments: ModelInstruments;
  private readonly admittedAt = performance.now();
  private lastChunkAt: number | undefined;

  constructor(
    private readonly ctx: RouterContext,
    readonly requestId: string,
    private readonly req: GenerateRequest,
    private readonly meta: RequestMeta,
    private readonly responder: StreamResponder,
    readonly deadline: number,
    private readonly trace: RouteTrace,
  ) {
    this.instruments = ctx.metrics.forModel(req.model);
    this.maxTokens = req.maxTokens;
    this.deadlineTimer = setTimeout(
      () => this.fail(new DeadlineExceededError(`deadline passed after ${this.attempts} attempt(s)`)),
      Math.max(0, deadline - Date.now()),
    ).unref();
  }

  /** The replica of the running attempt, if any. */
  get replicaId(): string | undefined {
    return this.current?.replicaId;
  }

  /** Starts the first attempt. */
  start(): void {
    this.next(undefined);
  }

  /** The replica running this request's attempt was declared dead. */
  replicaDied(replicaId: string, why: string): void {
    if (this.current?.replicaId !== replicaId) return;
    this.failover('replica_dead', new UnavailableError(`replica ${replicaId} died (${why})`));
  }

  /** The client cancelled: stop the attempt and end the stream as cancelled. */
  cancel(reason: string): void {
    if (this.done) return;
    const err = new CancelledError(reason);
    this.abandonCurrent(reason, err);
    this.responder.end({
      finishReason: 'cancelled',
      usage: { promptTokens: 0, completionTokens: this.delivered.length },
      attempts: Math.max(1, this.attempts),
    });
    this.close(err.code, 0, err);
  }

  /** Ends the request with an error (retryable ones make the client resend elsewhere). */
  fail(err: SwitchyardError): void {
    if (this.done) return;
    this.abandonCurrent(err.message, err);
    this.responder.error(err);
    this.close(err.code, 0, err);
  }

  private next(lastError: SwitchyardError | undefined): void {
    if (this.done) return;
    if (Date.now() >= this.deadline) {
      return this.fail(new DeadlineExceededError(`deadline passed after ${this.attempts} attempt(s)`));
    }
    if (this.attempts >= this.ctx.options.maxAttempts) {
      return this.fail(lastError ?? new UnavailableError('no attempt succeeded'));
    }
    const remaining = this.maxTokens === undefined ? undefined : this.maxTokens - this.delivered.length;
    const member = this.choose();
    if (!member) {
      return this.fail(
        lastError ?? new UnavailableError(`no live replica serves ${this.req.model} for this request`),
      );
    }
    const number = ++this.attempts;
    const body = encodeGenerateRequest({
      ...this.req,
      resumeTokenIds: [...(this.req.resumeTokenIds ?? []), ...this.delivered],
      ...(remaining === undefined ? {} : { maxTokens: remaining }),
    });
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
    this.ctx.attached(this, member.id);
    attempt.handle = openStream(this.ctx.nc, replicaGenerateSubject(member.id), body, headers, {
      onMessage: (event) => this.onEvent(attempt, event),
      ackTimeoutMs: REPLICA_ACK_TIMEOUT_MS,
      deadline: this.deadline,
    });
  }

  /** A live, ready, not-full replica of the model not yet tried; a busy one only if none is free. */
  private choose(): Member | undefined {
    const all = this.ctx.membership
      .candidates(this.req.model, this.req.version)
      .filter((m) => !this.excluded.has(m.id));
    const free = all.filter((m) => !isFull(m));
    return free.length > 0 ? this.ctx.strategy.select(free) : undefined;
  }

  private onEvent(attempt: Attempt, event: StreamEvent): void {
    if (this.done || this.current !== attempt) return; // an older attempt: ignored
    switch (event.kind) {
      case 'ack':
        if (this.maxTokens === undefined && event.ack.maxTokens !== undefined) {
          this.maxTokens = this.delivered.length + event.ack.maxTokens;
        }
        return;
      case 'chunk': {
        const { tokenIds, text } = event.chunk;
        const seed = !this.sentSeed && this.req.seed !== undefined ? { seed: this.req.seed } : {};
        this.sentSeed = true;
        this.responder.chunk({ tokenIds, text, attempt: attempt.number, ...seed });
        this.delivered.push(...tokenIds);
        this.observeChunk(tokenIds.length);
        this.armStall(attempt);
        return;
      }
      case 'end': {
        const { end } = event;
        this.detach(attempt);
        endSpan(attempt.span);
        this.responder.end({
          finishReason: end.finishReason,
          usage: {
            promptTokens: end.usage.promptTokens,
            completionTokens: attempt.deliveredBefore + end.usage.completionTokens,
          },
          attempt: attempt.number,
          attempts: this.attempts,
          ...(end.modelVersion !== undefined ? { modelVersion: end.modelVersion } : {}),
        });
        return this.close('ok', end.usage.promptTokens);
      }
      case 'error': {
        const err = event.error;
        if (!err.retryable) return this.fail(err);
        const reason: FailoverReason = /no ack/.test(err.message)
          ? 'no_ack'
          : err.code === 'unavailable'
            ? 'unavailable'
            : 'error';
        return this.failover(reason, err);
      }
    }
  }

  private armStall(attempt: Attempt): void {
    clearTimeout(attempt.stallTimer);
    const ms = this.ctx.options.stallTimeoutMs;
    attempt.stallTimer = setTimeout(() => {
      if (this.current === attempt) {
        this.failover(
          'stalled',
          new UnavailableError(`replica ${attempt.replicaId} stalled: no token for ${ms} ms`),
        );
      }
    }, ms).unref();
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
    try {
      this.ctx.nc.publish(
        replicaCancelSubject(attempt.replicaId),
        encodeCancel({ requestId: this.requestId, attempt: attempt.number, reason: reason.slice(0, 200) }),
      );
    } catch {
      // Connection closing: the replica's orphan watch frees the slot when our heartbeats stop.
    }
  }

  private detach(attempt: Attempt): void {
    clearTimeout(attempt.stallTimer);
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

  private close(code: RequestCode, promptTokens: number, err?: SwitchyardError): void {
    this.done = true;
    clearTimeout(this.deadlineTimer);
    const seconds = (performance.now() - this.admittedAt) / 1_000;
    this.instruments.finished(code, seconds, promptTokens, this.delivered.length);
    this.trace.span.setAttributes({
      [SWITCHYARD_ATTRS.attempt]: this.attempts,
      [GEN_AI_ATTRS.usageOutputTokens]: this.delivered.length,
      ...(promptTokens > 0 ? { [GEN_AI_ATTRS.usageInputTokens]: promptTokens } : {}),
    });
    endSpan(this.trace.span, err);
    this.ctx.finished(this);
  }
}
