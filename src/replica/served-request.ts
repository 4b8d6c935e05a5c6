/**
 * One request as a replica serves it: ack at once, stream the engine's chunks (the first one
 * carrying the seed and the max_tokens the engine settled on), keep the stream alive while the
 * request waits or its prefill runs, and end with exactly one `end` or `error`.
 *
 * Who ended it decides what the router hears: the engine's own end is forwarded; an end the
 * replica chose (deadline, orphaned router, hand-over on drain or reconnect) is the typed error
 * it chose; a cancel the router asked for ends as `cancelled`; a `cancelled` nobody asked for
 * (the engine stopped under the request) becomes `unavailable`, so the router resumes elsewhere
 * instead of forwarding it as success.
 */
import { context } from '@opentelemetry/api';
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import type { StreamResponder } from '../cluster/stream-responder.ts';
import { timerDelay } from '../cluster/timers.ts';
import type { EngineStream } from '../engine/types.ts';
import {
  DeadlineExceededError,
  UnavailableError,
  toSwitchyardError,
  type SwitchyardError,
} from '../errors/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { endRequestTrace, type RequestTrace } from './request-trace.ts';

/**
 * The identity of one attempt's work: (owning router, request id, attempt, reply subject). Two
 * routers that both hold the same request id (a client resent it) never touch each other's
 * attempts, and neither do two requests with the same id through one router (two requesters
 * chose it: a router keys requests by requester and id): each attempt has its own reply subject.
 */
export interface WorkKey {
  origin: string | undefined;
  requestId: string;
  attempt: number;
  /** The reply subject of the attempt (the router's inbox for it): unique per attempt. */
  reply: string;
}

/** The map key of a {@link WorkKey}. A space cannot occur in any of its parts. */
export function workKey(key: WorkKey): string {
  return `${key.origin ?? ''} ${key.requestId} ${key.attempt} ${key.reply}`;
}

/** What a served request needs from its replica. */
export interface ServingContext {
  readonly replicaId: string;
  readonly log: Logger;
  /** Model version put into every end. */
  readonly modelVersion: string;
  /** sha256 of the ONNX file served (empty for engines without one). */
  readonly modelSha256: string;
  readonly modelName: string;
  readonly logPrompts: boolean;
}

/** One attempt being served: created once the engine accepted it, gone once its stream ended. */
export class ServedRequest {
  readonly startedAt = Date.now();
  /** Set when the replica ends the request itself (deadline, orphan, hand-over). */
  private endWith: SwitchyardError | undefined;
  /** Set when the owning router asked to stop. */
  private cancelledByOwner = false;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Resolves when the stream's last message was sent. */
  readonly finished: Promise<void>;

  constructor(
    readonly key: WorkKey,
    private readonly ctx: ServingContext,
    private readonly req: GenerateRequest,
    private readonly stream: EngineStream,
    /** Aborting it cancels the engine's work at its next step (the signal `stream` was opened with). */
    private readonly controller: AbortController,
    private readonly responder: StreamResponder,
    private readonly trace: RequestTrace,
    deadline: number | undefined,
  ) {
    if (deadline !== undefined) {
      this.deadlineTimer = setTimeout(
        () => this.endEarly(new DeadlineExceededError('deadline passed during generation')),
        timerDelay(deadline - Date.now()),
      ).unref();
    }
    responder.ack({ by: ctx.replicaId, seed: stream.seed });
    this.finished = this.run();
  }

  /** The owning router asked to stop: the stream ends as `cancelled`. */
  cancel(): void {
    this.cancelledByOwner = true;
    this.controller.abort();
  }

  /** Ends the request on the replica's own initiative with a typed error. */
  endEarly(err: SwitchyardError): void {
    this.endWith ??= err;
    this.controller.abort();
  }

  /** Sends a keepalive when the stream has been quiet for `quietMs` (queued, or in a long prefill). */
  keepalive(quietMs: number): void {
    this.responder.keepalive(quietMs);
  }

  private async run(): Promise<void> {
    const { stream, responder, key } = this;
    try {
      let first = true;
      let text = '';
      for await (const chunk of stream) {
        if (first) {
          // The seed and the settled max_tokens (known once the engine tokenized the prompt, which
          // is before any chunk) let a router resume exactly where this run would have gone.
          responder.chunk({
            ...chunk,
            ...(stream.seed !== undefined ? { seed: stream.seed } : {}),
            maxTokens: stream.maxTokens,
          });
          first = false;
        } else {
          responder.chunk(chunk);
        }
        if (this.ctx.logPrompts) text += chunk.text;
      }
      const end = await stream.end;
      if (this.endWith) throw this.endWith;
      if (end.finishReason === 'cancelled' && !this.cancelledByOwner) {
        throw new UnavailableError('the engine dropped the request unasked: resume elsewhere');
      }
      responder.end({
        finishReason: end.finishReason,
        usage: end.usage,
        modelVersion: this.ctx.modelVersion,
        ...(this.ctx.modelSha256 ? { modelSha256: this.ctx.modelSha256 } : {}),
        ...(end.text ? { text: end.text } : {}),
        ...(end.resumedText !== undefined ? { resumedText: end.resumedText } : {}),
      });
      if (this.ctx.logPrompts) text += end.text ?? '';
      endRequestTrace(this.trace, stream.timings, { end, model: this.ctx.modelName });
      this.logDone({ ...key, finishReason: end.finishReason, usage: end.usage }, text);
    } catch (err) {
      let error = this.endWith ?? toSwitchyardError(err);
      if (error.code === 'cancelled' && !this.cancelledByOwner) {
        // The engine stopped under it (shutdown): not the client's cancel.
        error = new UnavailableError(`the replica stopped the request (${error.message}): resume elsewhere`);
      }
      responder.error(error);
      endRequestTrace(this.trace, stream.timings, { error });
      const level = error.code === 'cancelled' ? 'debug' : 'info'; // clients leave all the time
      context.with(this.trace.context, () =>
        this.ctx.log[level]({ ...key, code: error.code, err: error.message }, 'request ended with an error'),
      );
    } finally {
      clearTimeout(this.deadlineTimer);
    }
  }

  private logDone(done: object, text: string): void {
    const { req } = this;
    context.with(this.trace.context, () => {
      if (!this.ctx.logPrompts) return this.ctx.log.debug(done, 'request done');
      const asked =
        req.messages === undefined
          ? { prompt: req.prompt ?? req.promptTokenIds }
          : { messages: req.messages };
      this.ctx.log.info({ ...done, ...asked, text }, 'request done');
    });
  }
}
