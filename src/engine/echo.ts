/**
 * The echo engine: answers a request by echoing its prompt's bytes back as tokens, one per
 * step, with no model. It exists only so that router benchmarks can measure the cluster's own
 * cost (NATS hops, routing, streaming) apart from inference; `switchyard up` and the cluster
 * tests always use the real engine.
 */
import { collect, RequestChannel } from './channel.ts';
import type { ModelInfo } from './model-info.ts';
import { validateGenerateParams, type UncheckedGenerateParams } from '../cluster/messages/params.ts';
import type { EngineStats, EngineStream, GenerateResult, ServingEngine } from './types.ts';
import type { EngineOptions } from './options.ts';
import { BusyError, InvalidRequestError } from '../errors/errors.ts';

/** Model id the echo engine announces. */
export const ECHO_MODEL_ID = 'echo';
/** Tokens are bytes: 256 ids. */
const ECHO_VOCAB = 256;
const ECHO_CONTEXT = 4_096;
const DEFAULT_ECHO_MAX_TOKENS = 16;
const DEFAULT_ECHO_BATCH = 256;

const encoder = new TextEncoder();

/** A {@link ServingEngine} without a model. */
export class EchoEngine implements ServingEngine {
  readonly device = 'echo';
  /** The echo engine has nothing that can die. */
  readonly failed = new Promise<Error>(() => undefined);
  readonly maxQueue: number;
  readonly info: ModelInfo;
  private live = 0;
  private progress = 0;
  private readonly maxBatch: number;

  private constructor(opts: EngineOptions) {
    this.maxBatch = opts.maxBatchSize ?? DEFAULT_ECHO_BATCH;
    this.maxQueue = opts.maxQueue ?? 0;
    this.info = {
      id: opts.identity?.id ?? ECHO_MODEL_ID,
      version: opts.identity?.version ?? '1',
      dir: '',
      onnxPath: '',
      sha256: '',
      contextLength: ECHO_CONTEXT,
      eosTokenIds: [],
      padTokenId: 0,
      vocabSize: ECHO_VOCAB,
      numLayers: 0,
      numKvHeads: 0,
      headDim: 0,
    };
  }

  /** Starts at once: there is nothing to load. */
  static start(opts: EngineOptions): Promise<EchoEngine> {
    return Promise.resolve(new EchoEngine(opts));
  }

  stream(request: UncheckedGenerateParams, opts: { signal?: AbortSignal } = {}): EngineStream {
    const params = validateGenerateParams(request);
    const text = params.messages ? params.messages.map((m) => m.content).join('\n') : (params.prompt ?? '');
    const prompt = params.promptTokenIds ?? [...encoder.encode(text)];
    if (prompt.some((t) => t >= ECHO_VOCAB))
      throw new InvalidRequestError('echo token ids must be bytes (0-255)');
    if (this.live >= this.maxBatch + this.maxQueue) throw new BusyError('echo engine is full');
    const maxTokens = params.maxTokens ?? DEFAULT_ECHO_MAX_TOKENS;
    const resumed = params.resumeTokenIds?.length ?? 0;
    let cancelled = false;
    const channel = new RequestChannel(params.seed, () => (cancelled = true));
    channel.settle({ promptTokens: prompt.length, maxTokens }); // its "tokenizing" is instant
    opts.signal?.addEventListener('abort', () => channel.abort(), { once: true });
    this.live++;
    // One token per macrotask, as a real engine yields one per step (but with no step cost).
    let produced = 0;
    const step = (): void => {
      if (cancelled || produced >= maxTokens) {
        this.live--;
        channel.close({
          finishReason: cancelled ? 'cancelled' : 'length',
          usage: { promptTokens: prompt.length, completionTokens: produced },
        });
        return;
      }
      const token = prompt[(resumed + produced) % prompt.length]!;
      produced++;
      this.progress++;
      channel.push({ tokenIds: [token], text: String.fromCharCode(token) });
      setImmediate(step);
    };
    setImmediate(step);
    return channel;
  }

  generate(request: UncheckedGenerateParams, opts: { signal?: AbortSignal } = {}): Promise<GenerateResult> {
    return collect(this.stream(request, opts));
  }

  stats(): EngineStats {
    return {
      queueDepth: Math.max(0, this.live - this.maxBatch),
      activeSequences: Math.min(this.live, this.maxBatch),
      maxBatchSize: this.maxBatch,
      tokenBudget: ECHO_CONTEXT * this.maxBatch,
      freeTokenBudget: ECHO_CONTEXT * (this.maxBatch - Math.min(this.live, this.maxBatch)),
      progress: this.progress,
      busySince: null,
      stepStartedAt: null,
      stepTokens: 0,
      stepExpectedMs: 0,
    };
  }

  injectFault(): void {
    throw new InvalidRequestError('the echo engine takes no faults');
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}
