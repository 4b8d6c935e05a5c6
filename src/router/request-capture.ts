/**
 * What a router records of one request for its completion event: the output as it was
 * delivered (token ids and text across attempts), failovers, timings, and the outcome. The
 * routed request feeds it as it goes; at the end it becomes one event handed to the capture
 * publisher, which never makes the request wait.
 *
 * The output of a request resumed from token ids (a client's resend after its router drained
 * or died, or this router's own failover) is the resumed tokens plus what the final attempt
 * made. This router has the resumed ids but, with no tokenizer, not their text: the replica
 * that resumed them sends it in its end (`resumed_text`). Where no replica could (an error, a
 * resume that had already ended), the event says `text_complete: false`.
 */
import type { Span } from '@opentelemetry/api';
import type { CapturedFailover, CapturedSampling, CompletionEvent } from '../cluster/messages/capture.ts';
import { CAPTURE_FORMAT_VERSION } from '../cluster/messages/capture.ts';
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import type { End } from '../cluster/messages/stream.ts';
import type { SwitchyardError } from '../errors/errors.ts';
import type { RequestRollout } from '../rollout/types.ts';

/** Who and what a captured request is, known at admission. */
export interface CaptureSubject {
  requestId: string;
  /** BRIDGE_REQUESTER, or the client's inbox prefix (see CompletionEvent.requester). */
  requester: string;
  router: string;
  req: GenerateRequest;
  /** From a bridge's request only (see RequestMeta.keyId). */
  keyId?: string;
  /** Capture prompts and outputs (`--capture-text`). */
  text: boolean;
  span: Span;
  /** The rollout that split the request, and its arm. */
  rollout?: RequestRollout;
}

/** The outcome of a request as its router ends it. */
export type CaptureOutcome =
  | { kind: 'end'; end: End; attemptResumed: boolean }
  | { kind: 'cancelled'; final: boolean }
  | { kind: 'error'; error: SwitchyardError; final: boolean };

/** One request's capture record in the making. */
export class RequestCapture {
  private readonly startedAt = Date.now();
  private readonly startedMs = performance.now();
  private firstTokenMs: number | undefined;
  private readonly tokenIds: number[] = [];
  /** Text of every chunk this router forwarded. */
  private allText = '';
  /** Text of the running attempt's chunks. */
  private attemptText = '';
  private readonly failovers: CapturedFailover[] = [];
  private lastAttempt = 0;
  private version: { version?: string; sha256?: string } = {};

  constructor(private readonly subject: CaptureSubject) {}

  /** A new attempt started on a replica serving `version`. */
  attempt(number: number, version: string | undefined): void {
    this.lastAttempt = number;
    this.attemptText = '';
    if (version !== undefined) this.version = { version };
  }

  /** A chunk went to the client. */
  chunk(tokenIds: readonly number[], text: string): void {
    this.firstTokenMs ??= performance.now();
    for (const id of tokenIds) this.tokenIds.push(id);
    this.allText += text;
    this.attemptText += text;
  }

  /** The running attempt failed over. */
  failover(attempt: number, replica: string, reason: string): void {
    this.failovers.push({ attempt, replica, reason });
  }

  /** The event for this request's end, as it will be stored (before redaction). */
  event(outcome: CaptureOutcome, attempts: number, promptTokens: number): CompletionEvent {
    const { req, requestId, requester, router, keyId, span, text, rollout } = this.subject;
    const endedAt = Date.now();
    const durationMs = performance.now() - this.startedMs;
    const resumed = req.resumeTokenIds ?? [];
    const outputIds = [...resumed, ...this.tokenIds];
    const output = this.outputText(outcome, resumed.length > 0);
    const traceId = span.spanContext().traceId;
    const ttftMs = this.firstTokenMs === undefined ? undefined : this.firstTokenMs - this.startedMs;
    const decodeSeconds = (durationMs - (ttftMs ?? 0)) / 1_000;
    const end = outcome.kind === 'end' ? outcome.end : undefined;
    const version = end?.modelVersion ?? this.version.version;
    const event: CompletionEvent = {
      v: CAPTURE_FORMAT_VERSION,
      request_id: requestId,
      requester,
      final: outcome.kind === 'end' || outcome.final,
      attempt: this.lastAttempt,
      router,
      model: req.model,
      ...(version !== undefined ? { model_version: version } : {}),
      ...(end?.modelSha256 !== undefined ? { model_sha256: end.modelSha256 } : {}),
      ...(text && req.prompt !== undefined ? { prompt: req.prompt } : {}),
      ...(text && req.messages !== undefined ? { messages: req.messages } : {}),
      prompt_tokens: promptTokens,
      completion_tokens: outputIds.length,
      ...(text ? { output_token_ids: outputIds, output_text: output.text } : {}),
      text_complete: output.complete,
      ...(end !== undefined ? { finish_reason: end.finishReason } : {}),
      ...(outcome.kind === 'cancelled' ? { finish_reason: 'cancelled' as const } : {}),
      ...(outcome.kind === 'error'
        ? { error: { code: outcome.error.code, message: outcome.error.message.slice(0, 500) } }
        : {}),
      sampling: samplingOf(req),
      attempts,
      failovers: this.failovers,
      ...(ttftMs !== undefined ? { ttft_ms: round(ttftMs) } : {}),
      duration_ms: round(durationMs),
      ...(this.tokenIds.length > 1 && decodeSeconds > 0
        ? { tokens_per_s: round(this.tokenIds.length / decodeSeconds) }
        : {}),
      ...(traceId !== undefined && !/^0+$/.test(traceId) ? { trace_id: traceId } : {}),
      ...(keyId !== undefined ? { api_key_id: keyId } : {}),
      ...(req.metadata !== undefined ? { metadata: req.metadata } : {}),
      ...(rollout !== undefined ? { rollout: { id: rollout.id, arm: rollout.arm } } : {}),
      text_captured: text,
      started_at: new Date(this.startedAt).toISOString(),
      ended_at: new Date(endedAt).toISOString(),
    };
    return event;
  }

  /** The whole output's text, and whether it is whole. */
  private outputText(outcome: CaptureOutcome, hadResume: boolean): { text: string; complete: boolean } {
    if (outcome.kind === 'end') {
      const tail = this.attemptText + (outcome.end.text ?? '');
      if (!outcome.attemptResumed) return { text: tail, complete: true };
      if (outcome.end.resumedText !== undefined)
        return { text: outcome.end.resumedText + tail, complete: true };
      return { text: this.allText + (outcome.end.text ?? ''), complete: !hadResume };
    }
    return { text: this.allText, complete: !hadResume };
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** The sampling parameters as served (the router's chosen seed included). */
function samplingOf(req: GenerateRequest): CapturedSampling {
  const s: CapturedSampling = {};
  if (req.temperature !== undefined) s.temperature = req.temperature;
  if (req.topP !== undefined) s.top_p = req.topP;
  if (req.topK !== undefined) s.top_k = req.topK;
  if (req.presencePenalty !== undefined) s.presence_penalty = req.presencePenalty;
  if (req.frequencyPenalty !== undefined) s.frequency_penalty = req.frequencyPenalty;
  if (req.seed !== undefined) s.seed = req.seed;
  if (req.maxTokens !== undefined) s.max_tokens = req.maxTokens;
  if (req.stop !== undefined) s.stop = req.stop;
  return s;
}
