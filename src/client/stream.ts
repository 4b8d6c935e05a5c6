/**
 * One generate request as a program sees it: a stream of token deltas that survives the loss of
 * the router that owns it. The router owns the request's replica-side failover; this class owns
 * the router's: when the router dies (no-responders, no ack, its heartbeats stop, or its stream
 * fails with `unavailable` or `internal`), the request is sent again under the same request id,
 * with the effective seed and every token already handed to the caller as `resume_token_ids`
 * (the one resume builder, `cluster/resume.ts`, that routers use too), so the caller sees one
 * stream without gaps or duplicates (DESIGN.md invariants 1 and 2). Each resend says in
 * `Sy-Attempt` how many replica attempts the request has used, so router failovers and client
 * resends spend one budget.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { errorFromHeaders, writeRequestMeta } from '../cluster/headers.ts';
import { encodeGenerateRequest, type GenerateRequest } from '../cluster/messages/generate.ts';
import {
  CANCEL_REASON_MAX_LENGTH,
  encodeCancel,
  type Ack,
  type Chunk,
  type End,
  type FinishReason,
  type Usage,
} from '../cluster/messages/stream.ts';
import { buildResume } from '../cluster/resume.ts';
import { openStream, type StreamEvent, type StreamHandle } from '../cluster/stream-requester.ts';
import { GENERATE_SUBJECT, routerCancelSubject } from '../cluster/subjects.ts';
import { CancelledError, UnavailableError, type ErrorCode, type SwitchyardError } from '../errors/errors.ts';
import { DeltaQueue } from './delta-queue.ts';
import { MAX_RETRY_BACKOFF_MS, type CompiledClientOptions } from './options.ts';
import type { RouterLease, RouterWatch } from './router-watch.ts';
import { context, type Context } from '@opentelemetry/api';
import { GEN_AI_ATTRS, SWITCHYARD_ATTRS, SWITCHYARD_EVENTS } from '../telemetry/attributes.ts';
import {
  endSpan,
  extractTrace,
  injectTrace,
  setTokenUsage,
  startSendSpan,
  type MessageSpan,
} from '../telemetry/propagation.ts';

/**
 * Codes after which the request is sent again: the router (or its path) was lost. `busy` is
 * retryable in the taxonomy but goes to the caller, who owns the back-off policy (HTTP 429 +
 * Retry-After); `engine_failed` was already retried by the router; the other codes would fail
 * the same way anywhere.
 */
const FAILOVER_CODES: ReadonlySet<ErrorCode> = new Set(['unavailable', 'internal']);

/** New tokens, in order, and the text of exactly these tokens. */
export interface StreamDelta {
  tokenIds: number[];
  /** May be empty while a multi-byte character is incomplete; concatenated deltas give the text. */
  text: string;
}

/** How a stream finished. */
export interface StreamResult {
  finishReason: FinishReason;
  /**
   * `promptTokens` from the final router; `completionTokens` = tokens the client had delivered
   * before its last resend + the final router's `completion_tokens`.
   */
  usage: Usage;
  /**
   * Replica attempts the request used across every router (attempt numbers run on across
   * resends), and at least the number of sends.
   */
  attempts: number;
  /** The effective sampling seed; absent for greedy requests that never had one. */
  seed?: number;
  /** The model version that produced the final tokens, when the cluster reports it. */
  modelVersion?: string;
}

/** What a stream needs from the client that made it. */
export interface StreamContext {
  nc: NatsConnection;
  watch: RouterWatch;
  options: CompiledClientOptions;
}

/** A validated request with everything the client settled before the first send. */
export interface PreparedRequest {
  request: GenerateRequest;
  requestId: string;
  /** Epoch ms. */
  deadline: number;
  traceparent?: string;
  tracestate?: string;
  /** The API key id to record the request under (a bridge's request). */
  keyId?: string;
  signal?: AbortSignal;
}

/** One send of the request to the front door. */
interface Attempt {
  handle: StreamHandle;
  /** The router that acked (owns) this send. */
  routerId?: string;
  lease?: RouterLease;
  /** Tokens the client put into resume_token_ids on this send (beyond the caller's own). */
  resumed: number;
  /** The router ended this send itself (an error message), so it needs no cancel. */
  remoteEnded: boolean;
  /** The send is over (and its router told to stop where needed). */
  over: boolean;
}

/**
 * A request in flight: iterate it (once) for {@link StreamDelta}s; `result` settles when it
 * ends. Iteration throws the {@link SwitchyardError} that `result` rejects with; breaking out
 * of the iteration cancels the request. Made by `SwitchyardClient.stream()`.
 */
export class ClientStream implements AsyncIterable<StreamDelta> {
  /** The request id: the idempotency key, the same across every resend. */
  readonly requestId: string;
  /** The effective seed, once the router announced it (undefined for a greedy request without one). Never rejects. */
  readonly seed: Promise<number | undefined>;
  /** Settles when the stream ends; rejects with a SwitchyardError (`CancelledError` after a cancel). */
  readonly result: Promise<StreamResult>;
  private readonly ctx: StreamContext;
  private readonly prepared: PreparedRequest;
  private readonly queue: DeltaQueue<StreamDelta>;
  private readonly delivered: number[] = [];
  private effectiveSeed: number | undefined;
  private seedKnown = false;
  /** max_tokens of the caller's request as the cluster settled it (its own value, or the default). */
  private settledMaxTokens: number | undefined;
  /**
   * The model version the request is pinned to: the caller's, else the one its router announced
   * (in the ack, final with the first chunk). A resend that carries tokens names it, so they
   * resume only on that version.
   */
  private pinnedVersion: string | undefined;
  /** The highest replica attempt number seen in a chunk: where the next router's attempts start. */
  private highestAttempt = 0;
  /** Sends a router acked (each may have spent replica attempts this client never saw). */
  private ackedSends = 0;
  private current: Attempt | undefined;
  private settled = false;
  private wakePause: (() => void) | undefined;
  private resolveSeed!: (seed: number | undefined) => void;
  private resolveResult!: (result: StreamResult) => void;
  private rejectResult!: (err: SwitchyardError) => void;
  private readonly onAbort = (): void => this.cancel('request cancelled by the caller');
  /** The stream's CLIENT span, made on the first send; every send carries its context. */
  private trace: MessageSpan | undefined;
  /** Where the span hangs: the caller's traceparent when given, else the active context. */
  private readonly traceParent: Context;

  /** Starts sending at once; use `SwitchyardClient.stream()` rather than this. */
  constructor(ctx: StreamContext, prepared: PreparedRequest) {
    this.ctx = ctx;
    this.prepared = prepared;
    this.requestId = prepared.requestId;
    this.effectiveSeed = prepared.request.seed;
    this.settledMaxTokens = prepared.request.maxTokens;
    this.pinnedVersion = prepared.request.version;
    this.traceParent =
      prepared.traceparent === undefined
        ? context.active()
        : extractTrace(
            writeRequestMeta({ traceparent: prepared.traceparent, tracestate: prepared.tracestate }),
            context.active(),
          );
    this.queue = new DeltaQueue(() => this.cancel('the consumer stopped reading'));
    this.seed = new Promise((resolve) => (this.resolveSeed = resolve));
    this.result = new Promise<StreamResult>((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    // A caller that only iterates must not get an unhandled rejection from `result`.
    this.result.catch(() => undefined);
    if (prepared.signal?.aborted) {
      this.fail(new CancelledError('request cancelled by the caller before it was sent'));
      return;
    }
    prepared.signal?.addEventListener('abort', this.onAbort, { once: true });
    void this.run();
  }

  /** The model version the request is pinned to, once a router announced it (or the caller's). */
  get modelVersion(): string | undefined {
    return this.pinnedVersion;
  }

  /** The router that owns the request right now (undefined before the first ack). */
  get routerId(): string | undefined {
    return this.current?.routerId;
  }

  /**
   * Ends the stream with {@link CancelledError} and tells the owning router to stop (once its
   * ack names it, if it has not acked yet). No-op once the stream has ended.
   */
  cancel(reason = 'request cancelled by the caller'): void {
    if (this.settled) return;
    const attempt = this.current;
    const err = new CancelledError(reason);
    this.fail(err);
    if (attempt !== undefined && !attempt.over && attempt.routerId !== undefined) {
      this.sendCancel(attempt, attempt.routerId, reason);
      attempt.handle.close(err);
    }
    // Otherwise the send stays open for its ack, which names the router to cancel (see onAck).
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamDelta> {
    return this.queue[Symbol.asyncIterator]();
  }

  private async run(): Promise<void> {
    let lostSends = 0;
    for (let sendNo = 1; ; sendNo += 1) {
      const attempt = this.send();
      const outcome = await attempt.handle.done;
      attempt.lease?.release();
      if (this.settled) return;
      if (outcome.ok && outcome.end.finishReason !== 'cancelled')
        return this.succeed(attempt, outcome.end, sendNo);
      attempt.over = true;
      const error = outcome.ok
        ? // We did not cancel (that settles the stream first): the router dropped the request.
          new UnavailableError(`router ${attempt.routerId ?? '?'} ended the request as cancelled unasked`)
        : outcome.error;
      const failover = FAILOVER_CODES.has(error.code);
      // A send no router acked within the ack timeout was lost on the way (a NATS route that
      // died silently still takes its share of the queue group, a throttled link delays acks):
      // it reached no router and spent no replica attempt, so only the deadline bounds resends.
      if (!outcome.ok && outcome.failure === 'no_ack' && attempt.routerId === undefined) lostSends++;
      const spent = sendNo - lostSends;
      const giveUp = !failover || this.ctx.options.maxAttempts === 1 || spent >= this.ctx.options.maxAttempts;
      if (attempt.routerId !== undefined && !attempt.remoteEnded) {
        // It may be alive but cut off from us: stop it before a second router takes over, and
        // say that we resend, so its end is not recorded as the request's.
        this.sendCancel(attempt, attempt.routerId, `client gave up on it: ${error.code}`, !giveUp);
      }
      if (giveUp) return this.fail(error);
      await this.pause(sendNo);
      if (this.settled) return;
    }
  }

  /** Sends the request (once more) from where the caller is. */
  private send(): Attempt {
    const { request, requestId, deadline } = this.prepared;
    const resumed = this.delivered.length;
    const body = buildResume({
      request,
      delivered: this.delivered,
      maxTokens: this.settledMaxTokens,
      seed: this.effectiveSeed,
    });
    // Tokens resume only on the version that made them; without tokens any version may start it.
    if (resumed > 0 && this.pinnedVersion !== undefined) body.version = this.pinnedVersion;
    // Past every attempt an earlier router made (at least one per earlier send a router took).
    const attemptNo = Math.max(this.highestAttempt, this.ackedSends) + 1;
    const headers = writeRequestMeta({ requestId, deadline, attempt: attemptNo, keyId: this.prepared.keyId });
    if (this.trace === undefined) {
      this.trace = startSendSpan(
        headers,
        {
          subject: GENERATE_SUBJECT,
          attributes: {
            [SWITCHYARD_ATTRS.requestId]: requestId,
            [GEN_AI_ATTRS.requestModel]: request.model,
          },
        },
        this.traceParent,
      );
    } else {
      injectTrace(this.trace.context, headers);
      this.trace.span.addEvent(SWITCHYARD_EVENTS.resend, { [SWITCHYARD_ATTRS.resumedTokens]: resumed });
    }
    // The handle is set before any event can arrive: openStream delivers nothing synchronously.
    const attempt = { resumed, remoteEnded: false, over: false } as Attempt;
    attempt.handle = openStream(this.ctx.nc, GENERATE_SUBJECT, encodeGenerateRequest(body), headers, {
      ackTimeoutMs: this.ctx.options.ackTimeoutMs,
      deadline,
      inboxPrefix: this.ctx.options.inboxPrefix,
      onMessage: (event) => this.onEvent(attempt, event),
    });
    this.current = attempt;
    return attempt;
  }

  private onEvent(attempt: Attempt, event: StreamEvent): void {
    if (event.kind === 'ack') this.onAck(attempt, event.ack);
    else if (event.kind === 'chunk') this.onChunk(attempt, event.chunk);
    else if (event.kind === 'error') {
      attempt.remoteEnded = event.msg !== undefined && errorFromHeaders(event.msg.headers) !== undefined;
    }
  }

  private onAck(attempt: Attempt, ack: Ack): void {
    attempt.routerId = ack.by;
    this.ackedSends++;
    if (this.settled) {
      // Cancelled before this ack: only now do we know which router to tell.
      this.sendCancel(attempt, ack.by, 'request cancelled by the caller');
      attempt.handle.close();
      return;
    }
    this.learnSeed(ack.seed ?? this.effectiveSeed);
    if (ack.modelVersion !== undefined && this.delivered.length === 0) this.pinnedVersion = ack.modelVersion;
    attempt.lease = this.ctx.watch.watch(ack.by, (reason) => attempt.handle.close(reason));
  }

  private onChunk(attempt: Attempt, chunk: Chunk): void {
    if (this.settled) return;
    attempt.lease?.touch();
    if (chunk.seed !== undefined && this.effectiveSeed === undefined) this.learnSeed(chunk.seed);
    if (chunk.maxTokens !== undefined && this.settledMaxTokens === undefined) {
      this.settledMaxTokens = attempt.resumed + chunk.maxTokens;
    }
    this.highestAttempt = Math.max(this.highestAttempt, chunk.attempt);
    if (chunk.modelVersion !== undefined) this.pinnedVersion = chunk.modelVersion;
    const { tokenIds, text } = chunk;
    if (tokenIds.length === 0 && text === '') return;
    this.delivered.push(...tokenIds);
    this.queue.push({ tokenIds, text });
  }

  private learnSeed(seed: number | undefined): void {
    if (seed !== undefined) this.effectiveSeed = seed;
    if (this.seedKnown) return;
    this.seedKnown = true;
    this.resolveSeed(this.effectiveSeed);
  }

  private succeed(attempt: Attempt, end: End, sendNo: number): void {
    // Text tied to no token (held back for a stop sequence, released at EOS) comes with the end.
    if (end.text !== undefined) this.queue.push({ tokenIds: [], text: end.text });
    this.settle();
    const result: StreamResult = {
      finishReason: end.finishReason,
      usage: {
        promptTokens: end.usage.promptTokens,
        completionTokens: attempt.resumed + end.usage.completionTokens,
      },
      attempts: Math.max(end.attempts, sendNo),
    };
    if (this.effectiveSeed !== undefined) result.seed = this.effectiveSeed;
    if (end.modelVersion !== undefined) result.modelVersion = end.modelVersion;
    if (this.trace !== undefined) {
      this.trace.span.setAttribute(SWITCHYARD_ATTRS.attempt, result.attempts);
      setTokenUsage(this.trace.span, {
        inputTokens: result.usage.promptTokens,
        outputTokens: result.usage.completionTokens,
      });
      endSpan(this.trace.span);
    }
    this.queue.close();
    this.resolveResult(result);
  }

  private fail(err: SwitchyardError): void {
    if (this.settled) return;
    this.settle();
    if (this.trace !== undefined) endSpan(this.trace.span, err);
    this.queue.fail(err);
    this.rejectResult(err);
  }

  private settle(): void {
    this.settled = true;
    this.prepared.signal?.removeEventListener('abort', this.onAbort);
    this.learnSeed(undefined);
    this.wakePause?.();
  }

  /** Tells `routerId` to stop `attempt`; its inbox proves to the router that we sent the request. */
  private sendCancel(attempt: Attempt, routerId: string, reason: string, resending = false): void {
    try {
      this.ctx.nc.publish(
        routerCancelSubject(routerId),
        encodeCancel({
          requestId: this.requestId,
          reason: reason.slice(0, CANCEL_REASON_MAX_LENGTH),
          reply: attempt.handle.inbox,
          ...(resending ? { resending } : {}),
        }),
      );
    } catch {
      // Closed connection: the router stops at the deadline or when it finds our inbox gone.
    }
  }

  /**
   * Waits the back-off before resend number `sendNo` + 1 (doubling from `retryBackoffMs`, at most
   * MAX_RETRY_BACKOFF_MS: routers that lost their own connection take a few hundred ms to come
   * back), cut short by the deadline or a cancel.
   */
  private pause(sendNo: number): Promise<void> {
    const backoff = Math.min(this.ctx.options.retryBackoffMs * 2 ** (sendNo - 1), MAX_RETRY_BACKOFF_MS);
    const ms = Math.min(backoff, this.prepared.deadline - Date.now());
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wakePause?.(), ms).unref();
      this.wakePause = () => {
        clearTimeout(timer);
        this.wakePause = undefined;
        resolve();
      };
    });
  }
}
