/**
 * The shapes the scheduler speaks in: a request as it runs, what a step yields for it, and the
 * step and load figures the worker mirrors to the main thread.
 */
import type { SamplingParams } from './sampling.ts';

/** Why a sequence ended. */
export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

/** A request as the scheduler runs it (already validated and tokenized). */
export interface ScheduledRequest {
  id: number;
  /** Prompt token ids. */
  promptIds: number[];
  /** Token ids already generated elsewhere (exact resume); sampling continues at their count. */
  resumeIds: number[];
  /** New tokens to generate at most. */
  maxTokens: number;
  sampling: SamplingParams;
  stop: string[];
  /** Keep generating past an end-of-sequence token (benchmarks, as vLLM's ignore_eos). */
  ignoreEos: boolean;
}

/**
 * Why a request ended with `error`: `request` when only its own handling failed (the others in
 * its batch went on), `engine` when the forward pass it was in failed.
 */
export type FailureScope = 'request' | 'engine';

/** How a request ended, on its last event. */
export interface StepFinish {
  reason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** Text released by the end itself, attached to no token (held back before an EOS). */
  text?: string;
  /** For a resumed request: the text its resumed tokens stand for (see EngineEnd.resumedText). */
  resumedText?: string;
  /** Present when `reason` is `error`. */
  error?: { message: string; scope: FailureScope };
}

/** What one request got from one step. */
export interface StepEvent {
  id: number;
  tokenIds: number[];
  text: string;
  /** Present on the request's last event. */
  finish?: StepFinish;
}

/** One forward pass, as metrics and traces see it. Times are epoch milliseconds. */
export interface StepInfo {
  kind: 'prefill' | 'decode';
  /** Rows in the forward pass. */
  batchSize: number;
  startedAt: number;
  endedAt: number;
}

/** Load figures, mirrored to the main thread after every step. */
export interface SchedulerStats {
  queueDepth: number;
  activeSequences: number;
  reservedTokens: number;
  progress: number;
}

/** Limits the scheduler admits within. */
export interface SchedulerLimits {
  maxBatchSize: number;
  tokenBudget: number;
  maxPrefillTokens: number;
  padTokenId: number;
  eosTokenIds: readonly number[];
}
