/**
 * The engine as an actor uses it: a main-thread handle over two worker threads, one that runs
 * the model and one that tokenizes prompts. Admission control runs here: what can be decided
 * without tokens (parameters, capacity, a prompt too long by its size alone) is answered at once
 * by `stream()` throwing; the rest (context length) once the tokenizer thread has the tokens,
 * through the returned stream. Bad input and overload never reach the model's worker.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import {
  BusyError,
  CancelledError,
  EngineFailedError,
  InvalidRequestError,
  StartupError,
  UnavailableError,
  toSwitchyardError,
} from '../errors/errors.ts';
import { compileEngineOptions, type CompiledEngineOptions, type EngineOptions } from './options.ts';
import { formatDevice } from './device.ts';
import { StepPace } from './step-pace.ts';
import { loadModelInfo, type ModelInfo } from './model-info.ts';
import {
  isSampled,
  validateGenerateParams,
  type GenerateParams,
  type UncheckedGenerateParams,
} from '../cluster/messages/params.ts';
import { samplingOf } from './request.ts';
import { randomSeed } from '../cluster/messages/params.ts';
import type { ScheduledRequest, SchedulerStats, StepEvent, StepInfo } from './step.ts';
import {
  checkSizeAlone,
  checkVocabulary,
  maxTokensOf,
  resumeEnded,
  type AdmissionLimits,
} from './admission.ts';
import { ModelTokenizer } from './tokenizer.ts';
import { TokenizerThread } from './tokenizer-thread.ts';
import type { FaultSettings, FromWorker, ToWorker, WorkerInit } from './worker-protocol.ts';
import { collect, RequestChannel } from './channel.ts';
import { GEN_AI_ATTRS, SPAN_NAMES } from '../telemetry/attributes.ts';
import { endSpan, tracer } from '../telemetry/propagation.ts';
import type { EngineEnd, EngineStats, EngineStream, GenerateResult, ServingEngine } from './types.ts';

type State = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** How long `stop()` lets the worker release its session before terminating it. */
export const STOP_GRACE_MS = 5_000;

/** Continuous-batching ONNX engine for one model on one device. */
export class Engine implements ServingEngine {
  private state: State = 'running';
  private nextId = 1;
  /** Every request accepted and not ended: tokenizing, queued or running (the capacity bound). */
  private readonly live = new Map<number, RequestChannel>();
  /** Requests whose tokens are not back yet; `cancelled` once aborted meanwhile. */
  private readonly tokenizing = new Map<number, { cancelled: boolean }>();
  private workerStats: SchedulerStats = { queueDepth: 0, activeSequences: 0, reservedTokens: 0, progress: 0 };
  private busySince: number | null = null;
  private stepStartedAt: number | null = null;
  private stepTokens = 0;
  private readonly pace = new StepPace();
  private stopped: Promise<void> | undefined;
  private readonly exited: Promise<void>;
  private readonly limits: AdmissionLimits;
  private resolveFailed!: (err: Error) => void;
  readonly failed = new Promise<Error>((resolve) => (this.resolveFailed = resolve));
  onStep: ((step: StepInfo) => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly tokenizerThread: TokenizerThread,
    readonly info: ModelInfo,
    /** The model's tokenizer on this thread: token bytes, and `decode` for tests and tools. */
    readonly tokenizer: ModelTokenizer,
    readonly options: CompiledEngineOptions,
  ) {
    this.limits = {
      contextLength: info.contextLength,
      tokenBudget: options.tokenBudget,
      maxTokensCap: options.maxTokensCap,
      eos: new Set(info.eosTokenIds),
      tokenBytes: tokenizer.tokenBytes,
    };
    // Tracked from the start: a worker that dies on its own has exited before anyone stops it.
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    worker.on('error', (err) => this.onWorkerError(err));
    worker.on('exit', (code) => {
      if (this.state === 'running') this.onWorkerError(new Error(`engine worker exited with code ${code}`));
    });
    void tokenizerThread.failed.then((err) => {
      if (this.state === 'running') this.onWorkerError(new Error(`tokenizer worker died: ${err.message}`));
    });
  }

  /** Loads the model and tokenizer, starts the workers, and resolves once the session is ready. */
  static async start(opts: EngineOptions): Promise<Engine> {
    const options = compileEngineOptions(opts, availableParallelism());
    const info = { ...(await loadModelInfo(options.modelDir, options.onnxFile)), ...options.identity };
    const tokenizer = await ModelTokenizer.load(info.dir);
    const init: WorkerInit = {
      info,
      settings: {
        device: options.device,
        intraOpThreads: options.intraOpThreads,
        interOpThreads: options.interOpThreads,
        spinning: options.spinning,
      },
      limits: {
        maxBatchSize: options.maxBatchSize,
        tokenBudget: options.tokenBudget,
        maxPrefillTokens: options.maxPrefillTokens,
        padTokenId: info.padTokenId,
        eosTokenIds: info.eosTokenIds,
      },
      tokenBytes: tokenizer.tokenBytes,
    };
    const tokenizing = TokenizerThread.start(info.dir, options.maxBatchSize + options.maxQueue);
    const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: init });
    let warmUp: Array<[number, number]> = [];
    const ready = new Promise<ModelInfo>((resolve, reject) => {
      const onMessage = (msg: FromWorker): void => {
        if (msg.type === 'ready') {
          warmUp = msg.pace;
          resolve(msg.info);
        } else if (msg.type === 'failed') reject(new StartupError(msg.reason, msg.message));
      };
      worker.once('message', onMessage);
      worker.once('error', (err) =>
        reject(new StartupError('dependency', `engine worker failed: ${err.message}`, { cause: err })),
      );
    });
    const [model, thread] = await Promise.allSettled([ready, tokenizing]);
    if (model.status === 'rejected' || thread.status === 'rejected') {
      await worker.terminate();
      if (thread.status === 'fulfilled') await thread.value.stop();
      throw model.status === 'rejected' ? model.reason : (thread as PromiseRejectedResult).reason;
    }
    const engine = new Engine(worker, thread.value, model.value, tokenizer, options);
    for (const [tokens, ms] of warmUp) engine.pace.observe(tokens, ms);
    return engine;
  }

  /** Requests that may wait beyond the batch before `busy`. */
  get maxQueue(): number {
    return this.options.maxQueue;
  }

  /** `cpu` or `cuda:N`. */
  get device(): string {
    return formatDevice(this.options.device);
  }

  /**
   * Starts a generation and returns its stream at once; the prompt is tokenized in the tokenizer
   * thread meanwhile (`prompt_token_ids` are admitted here and now).
   *
   * Throws at once: `InvalidRequestError` for bad parameters, token ids outside the vocabulary or
   * a prompt that cannot fit the context by its size alone, `BusyError` when the engine is full,
   * `UnavailableError` when stopping, `CancelledError` when the signal already fired. Errors that
   * need the tokens (the context length of a text prompt, a chat template the model lacks) end
   * the stream instead: see {@link EngineStream.settled}.
   *
   * A resume (`resumeTokenIds`) that had already ended — a stop sequence completed in it, an
   * end-of-sequence token among it (unless `ignoreEos`), max_tokens reached — ends at once with
   * `stop` or `length`, no chunks, never reaching the worker.
   */
  stream(request: UncheckedGenerateParams, opts: { signal?: AbortSignal } = {}): EngineStream {
    if (this.state !== 'running') throw new UnavailableError(`engine is ${this.state}`);
    const params = validateGenerateParams(request);
    const resumeIds = params.resumeTokenIds ?? [];
    checkVocabulary(this.info, resumeIds);
    if (params.promptTokenIds) checkVocabulary(this.info, params.promptTokenIds);
    checkSizeAlone(this.info, this.tokenizer.maxTokenBytes, params, resumeIds.length);
    const capacity = this.options.maxBatchSize + this.options.maxQueue;
    if (this.live.size >= capacity) {
      throw new BusyError(
        `engine is full: ${this.live.size} requests running or queued (max batch ${this.options.maxBatchSize} ` +
          `+ max queue ${this.options.maxQueue}); retry later or elsewhere`,
      );
    }
    if (opts.signal?.aborted) throw new CancelledError('request was cancelled before it started');

    const seed = isSampled(params) ? (params.seed ?? randomSeed()) : undefined;
    const id = this.nextId++;
    const channel = new RequestChannel(seed, () => this.cancel(id));
    if (params.promptTokenIds) {
      this.admit(id, channel, params, params.promptTokenIds, seed, false); // throws before it is live
    } else {
      this.live.set(id, channel);
      if (this.busySince === null) this.busySince = Date.now();
      this.tokenizing.set(id, { cancelled: false });
      this.tokenize(id, channel, params, seed);
    }
    opts.signal?.addEventListener('abort', () => channel.abort(), { once: true });
    return channel;
  }

  /** Tokenizes in the tokenizer thread, inside the tokenize span, then admits. */
  private tokenize(
    id: number,
    channel: RequestChannel,
    params: GenerateParams,
    seed: number | undefined,
  ): void {
    const span = tracer().startSpan(SPAN_NAMES.tokenize); // child of the caller's active span
    const input = params.messages ? { messages: params.messages } : { text: params.prompt! };
    this.tokenizerThread.encode(input).then(
      (promptIds) => {
        span.setAttribute(GEN_AI_ATTRS.usageInputTokens, promptIds.length);
        endSpan(span);
        const { cancelled } = this.tokenizing.get(id) ?? { cancelled: false };
        this.tokenizing.delete(id);
        if (this.live.get(id) !== channel) return; // the engine stopped or failed meanwhile
        if (this.state !== 'running') {
          this.release(id);
          channel.fail(new UnavailableError(`engine is ${this.state}`));
          return;
        }
        try {
          this.admit(id, channel, params, promptIds, seed, cancelled);
        } catch (err) {
          this.release(id);
          channel.fail(toSwitchyardError(err));
        }
      },
      (err: unknown) => {
        endSpan(span, err);
        this.tokenizing.delete(id);
        if (this.live.get(id) !== channel) return;
        this.release(id);
        channel.fail(toSwitchyardError(err));
      },
    );
  }

  /**
   * Checks a request that has its tokens and hands it to the worker (or ends it at once: a
   * resume that had already ended, a request cancelled while it was tokenized). Throws
   * `InvalidRequestError`, before anything is live when the channel is not yet.
   */
  private admit(
    id: number,
    channel: RequestChannel,
    params: GenerateParams,
    promptIds: number[],
    seed: number | undefined,
    cancelled: boolean,
  ): void {
    checkVocabulary(this.info, promptIds);
    if (promptIds.length === 0) throw new InvalidRequestError('prompt must not be empty (it has no tokens)');
    const resumeIds = params.resumeTokenIds ?? [];
    const promptTokens = promptIds.length;
    const ended = resumeEnded(this.limits, params, promptIds.length, resumeIds);
    if (ended || cancelled) {
      channel.settle({ promptTokens, maxTokens: 0 });
      this.release(id);
      channel.timings.endedAt = Date.now();
      channel.close(ended ?? { finishReason: 'cancelled', usage: { promptTokens, completionTokens: 0 } });
      return;
    }
    const maxTokens = maxTokensOf(this.limits, params, promptIds.length, resumeIds.length);
    const req: ScheduledRequest = {
      id,
      promptIds,
      resumeIds,
      maxTokens,
      sampling: samplingOf(params, seed ?? 0),
      stop: params.stop ?? [],
      ignoreEos: params.ignoreEos ?? false,
    };
    this.live.set(id, channel);
    if (this.busySince === null) this.busySince = Date.now();
    channel.settle({ promptTokens, maxTokens });
    this.post({ type: 'submit', req });
  }

  /** Runs a whole generation and collects it. */
  generate(params: UncheckedGenerateParams, opts: { signal?: AbortSignal } = {}): Promise<GenerateResult> {
    return collect(this.stream(params, opts));
  }

  /** Load figures (queue depth, active sequences, free budget, progress counter, running step). */
  stats(): EngineStats {
    const active = this.workerStats.activeSequences;
    return {
      queueDepth: Math.max(0, this.live.size - active),
      activeSequences: active,
      maxBatchSize: this.options.maxBatchSize,
      tokenBudget: this.options.tokenBudget,
      freeTokenBudget: this.options.tokenBudget - this.workerStats.reservedTokens,
      progress: this.workerStats.progress,
      busySince: this.busySince,
      stepStartedAt: this.stepStartedAt,
      stepTokens: this.stepTokens,
      stepExpectedMs: this.pace.expectedMs(this.stepTokens),
    };
  }

  /** Requests running, queued or being tokenized. */
  get inFlight(): number {
    return this.live.size;
  }

  /** Injects a fault into the running engine (tests and chaos only; refused unless enabled). */
  injectFault(fault: FaultSettings): void {
    if (!this.options.allowFaultInjection) {
      throw new InvalidRequestError(
        'fault injection is disabled on this engine (allowFaultInjection is false)',
      );
    }
    const { crash, ...rest } = fault;
    if (crash === 'tokenizer') this.tokenizerThread.crash();
    this.post({ type: 'fault', fault: crash === 'tokenizer' ? rest : fault });
  }

  /**
   * Stops the workers; requests still in flight end as cancelled. Runs once, and resolves at once
   * when the worker has already died.
   */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'running') this.state = 'stopping';
    this.post({ type: 'stop' });
    const timer = setTimeout(() => void this.worker.terminate(), STOP_GRACE_MS);
    await Promise.all([this.exited, this.tokenizerThread.stop()]);
    clearTimeout(timer);
    for (const channel of this.live.values()) channel.fail(new CancelledError('engine stopped'));
    this.live.clear();
    this.tokenizing.clear();
    if (this.state !== 'failed') this.state = 'stopped';
  }

  private cancel(id: number): void {
    const tokenizing = this.tokenizing.get(id);
    // Tokenizing cannot be interrupted: the request ends as cancelled once its tokens are back.
    if (tokenizing) tokenizing.cancelled = true;
    else if (this.live.has(id)) this.post({ type: 'cancel', id });
  }

  private post(msg: ToWorker): void {
    this.worker.postMessage(msg); // a no-op once the worker has exited
  }

  private release(id: number): void {
    this.live.delete(id);
    if (this.live.size === 0) this.busySince = null;
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type === 'step-start') {
      this.stepStartedAt = msg.startedAt;
      this.stepTokens = msg.tokens;
      return;
    }
    if (msg.type !== 'events') return;
    this.workerStats = msg.stats;
    if (msg.stepEnded) {
      if (this.stepStartedAt !== null) this.pace.observe(this.stepTokens, Date.now() - this.stepStartedAt);
      this.stepStartedAt = null;
      this.stepTokens = 0;
    }
    if (msg.step !== undefined) this.onStep?.(msg.step);
    for (const event of msg.events) this.deliver(event, msg.step);
  }

  private deliver(event: StepEvent, step: StepInfo | undefined): void {
    const channel = this.live.get(event.id);
    if (!channel) return;
    const { timings } = channel;
    if (timings.firstTokenAt === undefined && step?.kind === 'prefill') {
      timings.prefillStartedAt = step.startedAt;
      timings.firstTokenAt = step.endedAt;
      timings.prefillBatchSize = step.batchSize;
    }
    if (event.finish) timings.endedAt = step?.endedAt ?? Date.now();
    if (event.tokenIds.length > 0 || event.text !== '')
      channel.push({ tokenIds: event.tokenIds, text: event.text });
    const finish = event.finish;
    if (!finish) return;
    this.release(event.id);
    if (finish.reason === 'error') {
      const message = finish.error?.message ?? 'unknown error';
      // A row that failed alone and a failed forward pass are both engine failures of this
      // request: its router retries it once elsewhere, then gives up (never an endless resend).
      channel.fail(
        new EngineFailedError(
          finish.error?.scope === 'request'
            ? `the request failed in the engine: ${message}`
            : `inference failed: ${message}`,
        ),
      );
    } else {
      const end: EngineEnd = {
        finishReason: finish.reason,
        usage: { promptTokens: finish.promptTokens, completionTokens: finish.completionTokens },
      };
      if (finish.text !== undefined) end.text = finish.text;
      if (finish.resumedText !== undefined) end.resumedText = finish.resumedText;
      channel.close(end);
    }
  }

  private onWorkerError(err: Error): void {
    if (this.state === 'failed') return;
    this.state = 'failed';
    this.resolveFailed(err);
    this.stepStartedAt = null;
    this.stepTokens = 0;
    for (const channel of this.live.values())
      channel.fail(new EngineFailedError(`engine failed: ${err.message}`, { cause: err }));
    this.live.clear();
    this.tokenizing.clear();
    this.busySince = null;
  }
}
