/** Public shapes of the engine API, kept apart so that the engine and its helpers share them without cycles. */
import type { ModelInfo } from './model-info.ts';
import type { UncheckedGenerateParams } from '../cluster/messages/params.ts';
import type { FinishReason, StepInfo } from './step.ts';
import type { FaultSettings } from './worker-protocol.ts';

/** One step's output for one request. */
export interface EngineChunk {
  tokenIds: number[];
  text: string;
}

/** How a request ended. */
export interface EngineEnd {
  finishReason: Exclude<FinishReason, 'error'>;
  usage: { promptTokens: number; completionTokens: number };
  /**
   * Text released only by the end, attached to no token: what the stream held back (a possible
   * stop-sequence prefix, an incomplete character) when an end-of-sequence token ended it. It
   * belongs to the end so that it is delivered exactly once: were it a chunk, a resume after a
   * lost end would replay the same tokens and release it again.
   */
  text?: string;
  /**
   * For a request resumed from token ids: the text those tokens stand for, as the stream that
   * delivered them released it. A router that resumed a client's resend has the token ids but no
   * tokenizer; the completion it captures needs their text.
   */
  resumedText?: string;
}

/**
 * When a request passed each phase, epoch milliseconds, for its trace: it waited in the queue
 * from `queuedAt` to `prefillStartedAt`, its prompt was computed until `firstTokenAt`, and it was
 * decoded until `endedAt`. Phases it never reached stay undefined.
 */
export interface RequestTimings {
  queuedAt: number;
  prefillStartedAt?: number;
  firstTokenAt?: number;
  endedAt?: number;
  /** Rows in the forward pass that computed its prompt. */
  prefillBatchSize?: number;
}

/** What a request was admitted with, once its prompt is tokenized. */
export interface EngineAdmission {
  /** Prompt length in tokens. */
  promptTokens: number;
  /** New tokens this request may generate (its max_tokens, or the default the engine chose). */
  maxTokens: number;
}

/**
 * A running request: iterate for chunks; `end` resolves when it is over.
 *
 * `stream()` returns it before the prompt is tokenized: errors found only with the tokens (a
 * prompt longer than the context, token ids outside the vocabulary) reach the consumer through
 * it (iteration throws, `end` and `settled` reject).
 */
export interface EngineStream extends AsyncIterable<EngineChunk> {
  /** The seed sampling uses (undefined for greedy requests). */
  readonly seed: number | undefined;
  /**
   * Resolves once the prompt is tokenized and the request admitted (or ended at admission: a
   * resume that had already finished); rejects like `end` when it never was.
   */
  readonly settled: Promise<EngineAdmission>;
  /** Prompt length in tokens: valid only after `settled` resolved (0 before). */
  readonly promptTokens: number;
  /** New tokens this request may generate: valid only after `settled` resolved (0 before). */
  readonly maxTokens: number;
  /**
   * Resolves with the finish reason and usage (and any text released by the end, see
   * {@link EngineEnd.text}); rejects with a SwitchyardError on failure.
   */
  readonly end: Promise<EngineEnd>;
  /** Phase times (engines that have phases fill them in as the request goes). */
  readonly timings?: Readonly<RequestTimings>;
}

/** A whole generation, as `generate()` returns it. */
export interface GenerateResult extends EngineEnd {
  text: string;
  tokenIds: number[];
  seed: number | undefined;
}

/** Load figures for heartbeats and metrics. */
export interface EngineStats {
  queueDepth: number;
  activeSequences: number;
  maxBatchSize: number;
  tokenBudget: number;
  freeTokenBudget: number;
  /** Forward passes so far: a replica whose counter stops while it has work is stuck. */
  progress: number;
  /** Epoch ms since the engine has had work without pause; null when idle. */
  busySince: number | null;
  /** Epoch ms when the forward pass running now started; null between steps. */
  stepStartedAt: number | null;
  /** Tokens the running forward pass covers (rows × new positions); 0 between steps. */
  stepTokens: number;
  /** How long the running pass is expected to take on this device, from measured passes; 0 between steps. */
  stepExpectedMs: number;
}

/**
 * What a replica needs of an engine: the ONNX engine, or the echo engine that router benchmarks
 * use to measure the cluster without inference.
 */
export interface ServingEngine {
  readonly info: ModelInfo;
  /** `cpu`, `cuda:N`, or `echo`. */
  readonly device: string;
  /** Requests that may wait beyond the batch before `busy`. */
  readonly maxQueue: number;
  stream(request: UncheckedGenerateParams, opts?: { signal?: AbortSignal }): EngineStream;
  generate(request: UncheckedGenerateParams, opts?: { signal?: AbortSignal }): Promise<GenerateResult>;
  stats(): EngineStats;
  injectFault(fault: FaultSettings): void;
  stop(): Promise<void>;
  /** Resolves (never rejects) if the engine dies on its own; a replica then stops so it is restarted. */
  readonly failed: Promise<Error>;
  /** Called after every forward pass (metrics); must be cheap and must not throw. */
  onStep?: (step: StepInfo) => void;
}

export type { StepInfo };
