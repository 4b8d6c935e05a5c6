/**
 * The engine as an actor uses it: a main-thread handle over a worker thread that runs the
 * model. Admission control (validation, context length, queue bound) runs here, synchronously,
 * so bad input and overload are answered at once and never reach the worker.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import {
  BusyError,
  CancelledError,
  InternalError,
  InvalidRequestError,
  StartupError,
  UnavailableError,
} from '../errors/errors.ts';
import { compileEngineOptions, type CompiledEngineOptions, type EngineOptions } from './options.ts';
import { formatDevice } from './device.ts';
import { loadModelInfo, type ModelInfo } from './model-info.ts';
import { isSampled, samplingOf, validateGenerateParams, type UncheckedGenerateParams } from './request.ts';
import { randomSeed } from './sampling.ts';
import type { ScheduledRequest, SchedulerStats, StepEvent, StepInfo } from './scheduler.ts';
import { ModelTokenizer } from './tokenizer.ts';
import type { FaultSettings, FromWorker, ToWorker, WorkerInit } from './worker-protocol.ts';
import { collect, RequestChannel } from './channel.ts';
import { GEN_AI_ATTRS, SPAN_NAMES } from '../telemetry/attributes.ts';
import { inSpan } from '../telemetry/propagation.ts';
import type { EngineStats, EngineStream, GenerateResult, ServingEngine } from './types.ts';

type State = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** Continuous-batching ONNX engine for one model on one device. */
export class Engine implements ServingEngine {
  private state: State = 'running';
  private nextId = 1;
  private readonly live = new Map<number, RequestChannel>();
  private workerStats: SchedulerStats = { queueDepth: 0, activeSequences: 0, reservedTokens: 0, progress: 0 };
  private busySince: number | null = null;
  private stopped: Promise<void> | undefined;
  private resolveFailed!: (err: Error) => void;
  readonly failed = new Promise<Error>((resolve) => (this.resolveFailed = resolve));
  onStep: ((step: StepInfo) => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
    readonly tokenizer: ModelTokenizer,
    readonly options: CompiledEngineOptions,
  ) {
    worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    worker.on('error', (err) => this.onWorkerError(err));
    worker.on('exit', (code) => {
      if (this.state === 'running') this.onWorkerError(new Error(`engine worker exited with code ${code}`));
    });
  }

  /** Loads the model and tokenizer, starts the worker, and resolves once the session is ready. */
  static async start(opts: EngineOptions): Promise<Engine> {
    const options = compileEngineOptions(opts, availableParallelism());
    const info = await loadModelInfo(options.modelDir, options.onnxFile);
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
    const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: init });
    const ready = await new Promise<ModelInfo>((resolve, reject) => {
      const onMessage = (msg: FromWorker): void => {
        if (msg.type === 'ready') resolve(msg.info);
        else if (msg.type === 'failed') reject(new StartupError(msg.reason, msg.message));
      };
      worker.once('message', onMessage);
      worker.once('error', (err) =>
        reject(new StartupError('dependency', `engine worker failed: ${err.message}`, { cause: err })),
      );
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return new Engine(worker, ready, tokenizer, options);
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
   * Starts a generation. Throws at once: `InvalidRequestError` for bad parameters or a prompt that
   * does not fit the context, `BusyError` when the queue is full, `UnavailableError` when stopping.
   */
  stream(request: UncheckedGenerateParams, opts: { signal?: AbortSignal } = {}): EngineStream {
    if (this.state !== 'running') throw new UnavailableError(`engine is ${this.state}`);
    const params = validateGenerateParams(request);
    const promptIds =
      params.promptTokenIds ??
      inSpan(SPAN_NAMES.tokenize, (span) => {
        const ids = this.tokenizer.encode(
          params.messages ? this.tokenizer.applyChatTemplate(params.messages) : params.prompt!,
        );
        span.setAttribute(GEN_AI_ATTRS.usageInputTokens, ids.length);
        return ids;
      });
    const resumeIds = params.resumeTokenIds ?? [];
    const { contextLength, vocabSize } = this.info;
    for (const id of [...promptIds, ...resumeIds]) {
      if (id >= vocabSize)
        throw new InvalidRequestError(`token id ${id} is outside the vocabulary (size ${vocabSize})`);
    }
    if (promptIds.length === 0) throw new InvalidRequestError('prompt must not be empty (it has no tokens)');
    const used = promptIds.length + resumeIds.length;
    const room = contextLength - used;
    const maxTokens = params.maxTokens ?? Math.min(room, this.options.maxTokensCap);
    if (room < 1 || used + maxTokens > contextLength) {
      throw new InvalidRequestError(
        `this model's maximum context length is ${contextLength} tokens, but the request needs ` +
          `${used + Math.max(maxTokens, 1)} (${promptIds.length} in the prompt, ${resumeIds.length} resumed, ` +
          `${Math.max(maxTokens, 1)} to generate); shorten the prompt or lower max_tokens`,
      );
    }
    if (used + maxTokens > this.options.tokenBudget) {
      throw new InvalidRequestError(
        `the request needs ${used + maxTokens} tokens of KV budget but this engine's token budget is ` +
          `${this.options.tokenBudget}; lower max_tokens`,
      );
    }
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
    const req: ScheduledRequest = {
      id,
      promptIds,
      resumeIds,
      maxTokens,
      sampling: samplingOf(params, seed ?? 0),
      stop: params.stop ?? [],
      ignoreEos: params.ignoreEos ?? false,
    };
    const channel = new RequestChannel(seed, promptIds.length, maxTokens, () => this.cancel(id));
    this.live.set(id, channel);
    if (this.busySince === null) this.busySince = Date.now();
    opts.signal?.addEventListener('abort', () => channel.abort(), { once: true });
    this.post({ type: 'submit', req });
    return channel;
  }

  /** Runs a whole generation and collects it. */
  generate(params: UncheckedGenerateParams, opts: { signal?: AbortSignal } = {}): Promise<GenerateResult> {
    return collect(this.stream(params, opts));
  }

  /** Load figures (queue depth, active sequences, free budget, progress counter). */
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
      stepStartedAt: null,
      stepTokens: 0,
    };
  }

  /** Requests running or waiting. */
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
    this.post({ type: 'fault', fault });
  }

  /** Stops the worker; requests still in flight end as cancelled. Runs once. */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'running') this.state = 'stopping';
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.post({ type: 'stop' });
    const timer = setTimeout(() => void this.worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
    for (const channel of this.live.values()) channel.fail(new CancelledError('engine stopped'));
    this.live.clear();
    this.state = 'stopped';
  }

  private cancel(id: number): void {
    if (this.live.has(id)) this.post({ type: 'cancel', id });
  }

  private post(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type !== 'events') return;
    this.workerStats = msg.stats;
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
    this.live.delete(event.id);
    if (this.live.size === 0) this.busySince = null;
    if (finish.reason === 'error') {
      channel.fail(new InternalError(`inference failed: ${finish.error ?? 'unknown error'}`));
    } else {
      channel.close({
        finishReason: finish.reason,
        usage: { promptTokens: finish.promptTokens, completionTokens: finish.completionTokens },
      });
    }
  }

  private onWorkerError(err: Error): void {
    this.state = 'failed';
    this.resolveFailed(err);
    for (const channel of this.live.values())
      channel.fail(new InternalError(`engine worker died: ${err.message}`, { cause: err }));
    this.live.clear();
  }
}
