/**
 * Engine options: what a user may set, their defaults, and the one function that turns them
 * into the compiled form the engine runs with (Temporal's worker-options pattern).
 */
import { StartupError } from '../errors/errors.ts';
import { parseDevice, type Device } from './device.ts';

import { DEFAULT_MAX_TOKENS_CAP } from '../cluster/messages/params.ts';

export { DEFAULT_MAX_TOKENS_CAP };
/** Default number of sequences decoded together in one step. */
export const DEFAULT_MAX_BATCH_SIZE = 32;
/** Default number of requests that may wait beyond the running batch before `busy`. */
export const DEFAULT_MAX_QUEUE = 64;
/** Default sum of (prompt + max_tokens) over running sequences: the KV-cache memory bound. */
export const DEFAULT_TOKEN_BUDGET = 16_384;
/** Default most prompt tokens prefilled together in one step (newcomers join between steps). */
export const DEFAULT_MAX_PREFILL_TOKENS = 4_096;
/** Default onnxruntime inter-op threads: one was best here (DESIGN.md). */
export const DEFAULT_INTER_OP_THREADS = 1;

/** What a user sets to run an engine. */
export interface EngineOptions {
  /** Model folder in the Hugging Face / Optimum layout (config.json, tokenizer.json, onnx/…). */
  modelDir: string;
  /** `cpu` or `cuda:N`. @default 'cpu' */
  device?: string;
  /** onnxruntime intra-op threads. @default the number of cores */
  intraOpThreads?: number;
  /** onnxruntime inter-op threads. @default 1 */
  interOpThreads?: number;
  /** Most sequences in one decode step. @default 32 */
  maxBatchSize?: number;
  /** Most requests waiting beyond the running batch; one more is refused with `busy`. @default 64 */
  maxQueue?: number;
  /** KV budget in tokens: a sequence reserves prompt + max_tokens while it runs. @default 16384 */
  tokenBudget?: number;
  /** Most prompt tokens prefilled in one step. @default 4096 */
  maxPrefillTokens?: number;
  /** max_tokens when a request gives none: the rest of the context, capped by this. @default 256 */
  maxTokensCap?: number;
  /** ONNX file inside the model folder. @default from manifest.json, else onnx/decoder_model_merged.onnx */
  onnxFile?: string;
  /** Let idle onnxruntime threads spin-wait (only for a machine given to one replica). @default false */
  spinning?: boolean;
  /** Allow fault injection (tests and the chaos suite only). @default false */
  allowFaultInjection?: boolean;
  /**
   * The id and version served, overriding the folder's manifest: a folder fetched from the model
   * registry is served as the registry's `id@version`, whatever its own manifest says.
   * @default from manifest.json, else the folder name and the ONNX file's hash
   */
  identity?: ModelIdentity;
}

/** Who a loaded model is to the cluster: what clients name (`model`) and which version. */
export interface ModelIdentity {
  id: string;
  version: string;
}

/** Options with every default filled in and checked. */
export interface CompiledEngineOptions {
  modelDir: string;
  device: Device;
  intraOpThreads: number;
  interOpThreads: number;
  maxBatchSize: number;
  maxQueue: number;
  tokenBudget: number;
  maxPrefillTokens: number;
  maxTokensCap: number;
  onnxFile: string | undefined;
  spinning: boolean;
  allowFaultInjection: boolean;
  identity: ModelIdentity | undefined;
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) {
    throw new StartupError('config', `engine option ${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  return v;
}

/** Fills defaults and rejects contradictions with a message naming the option. */
export function compileEngineOptions(opts: EngineOptions, cores: number): CompiledEngineOptions {
  if (typeof opts.modelDir !== 'string' || opts.modelDir === '') {
    throw new StartupError('config', 'engine option modelDir is required (a model folder)');
  }
  const compiled: CompiledEngineOptions = {
    modelDir: opts.modelDir,
    device: parseDevice(opts.device ?? 'cpu'),
    intraOpThreads: positiveInt('intraOpThreads', opts.intraOpThreads, Math.max(1, cores)),
    interOpThreads: positiveInt('interOpThreads', opts.interOpThreads, DEFAULT_INTER_OP_THREADS),
    maxBatchSize: positiveInt('maxBatchSize', opts.maxBatchSize, DEFAULT_MAX_BATCH_SIZE),
    maxQueue: positiveInt('maxQueue', opts.maxQueue, DEFAULT_MAX_QUEUE, 0),
    tokenBudget: positiveInt('tokenBudget', opts.tokenBudget, DEFAULT_TOKEN_BUDGET),
    maxPrefillTokens: positiveInt('maxPrefillTokens', opts.maxPrefillTokens, DEFAULT_MAX_PREFILL_TOKENS),
    maxTokensCap: positiveInt('maxTokensCap', opts.maxTokensCap, DEFAULT_MAX_TOKENS_CAP),
    onnxFile: opts.onnxFile,
    spinning: opts.spinning ?? false,
    allowFaultInjection: opts.allowFaultInjection ?? false,
    identity: opts.identity,
  };
  return compiled;
}
