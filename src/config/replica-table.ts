/** The `replica` subcommand's options: one line each, from which flags, env, file keys, help and docs come. */
import type { ConnectionOptions } from '../cluster/connection.ts';
import {
  DEFAULT_MAX_BATCH_SIZE,
  DEFAULT_MAX_PREFILL_TOKENS,
  DEFAULT_MAX_QUEUE,
  DEFAULT_MAX_TOKENS_CAP,
  DEFAULT_TOKEN_BUDGET,
  type EngineOptions,
} from '../engine/options.ts';
import {
  DEFAULT_DRAIN_GRACE_MS,
  DEFAULT_ORPHAN_TIMEOUT_MS,
  DEFAULT_REGISTRY_TIMEOUT_MS,
  DEFAULT_REPLICA_HEARTBEAT_INTERVAL_MS,
  type ReplicaOptions,
} from '../replica/options.ts';
import {
  DEFAULT_SERVERS_TEXT,
  idDef,
  logLevelDef,
  natsDefs,
  type CommonSettings,
  defBuilders,
} from './common-options.ts';
import type { OptionDef, OptionTable } from './option.ts';
import { BUNDLED_MODEL_DIR, BUNDLED_MODEL_TEXT } from './paths.ts';
import { MODEL_CACHE_ENV } from '../registry/cache.ts';

/** Environment variable that names the model folder (shared by `replica` and `up`). */
export const MODEL_ENV = 'SWITCHYARD_MODEL';

/** Whether a device name is one the engine accepts; kept here so a typo fails before NATS is touched. */
export const DEVICE_PATTERN = /^(cpu|cuda:\d{1,3}|webgpu(:\d{1,3})?)$/;

/** A replica's settings as resolved: its options plus what only the CLI uses. */
export interface ReplicaSettings extends ReplicaOptions, CommonSettings {
  engine: EngineOptions;
  nats: ConnectionOptions;
}

/** `--model DIR`, shared with `up`. */
export function modelDef(key: string): OptionDef {
  return {
    key,
    flag: 'model',
    env: MODEL_ENV,
    type: 'path',
    metavar: 'DIR|URL',
    default: BUNDLED_MODEL_DIR,
    defaultText: BUNDLED_MODEL_TEXT,
    doc:
      'Model folder in the Hugging Face / Optimum layout (config.json, tokenizer.json, onnx/), or a registry version, ' +
      '`registry://<id>@<version|alias>` (fetched into the digest cache; following an alias hot swaps when it moves).',
  };
}

const { env, int, ms, metricsPort, metricsHost } = defBuilders('replica');

const defs: OptionDef[] = [
  idDef('replica'),
  modelDef('engine.modelDir'),
  {
    key: 'engine.device',
    flag: 'device',
    env: env('device'),
    type: 'string',
    metavar: 'cpu|cuda:N|webgpu[:N]',
    default: 'cpu',
    check: (v) =>
      typeof v === 'string' && DEVICE_PATTERN.test(v)
        ? undefined
        : `expected cpu, cuda:N or webgpu[:N] (e.g. cuda:0, webgpu), got '${String(v)}'`,
    doc: 'Device to run on: the CPU, a CUDA GPU, or a WebGPU (Vulkan) adapter; one that cannot be had fails start-up (never a silent CPU fallback).',
  },
  {
    key: 'engine.intraOpThreads',
    flag: 'threads',
    env: env('threads'),
    type: 'int',
    min: 1,
    defaultText: 'cores',
    doc: 'onnxruntime intra-op threads; lower it when several replicas share a machine.',
  },
  int(
    'engine.maxBatchSize',
    'max-batch-size',
    DEFAULT_MAX_BATCH_SIZE,
    'Most sequences decoded together in one step.',
  ),
  int(
    'engine.maxQueue',
    'max-queue',
    DEFAULT_MAX_QUEUE,
    'Requests that may wait beyond the running batch; one more is answered `busy`.',
    0,
  ),
  int(
    'engine.tokenBudget',
    'token-budget',
    DEFAULT_TOKEN_BUDGET,
    'Sum of prompt + max_tokens over running sequences: the KV-cache memory bound.',
  ),
  int(
    'engine.maxPrefillTokens',
    'max-prefill-tokens',
    DEFAULT_MAX_PREFILL_TOKENS,
    'Most padded prompt tokens prefilled in one step.',
  ),
  int(
    'engine.maxTokensCap',
    'max-tokens-cap',
    DEFAULT_MAX_TOKENS_CAP,
    'max_tokens of a request that gives none.',
  ),
  ms(
    'heartbeatIntervalMs',
    'heartbeat-interval-ms',
    DEFAULT_REPLICA_HEARTBEAT_INTERVAL_MS,
    'Heartbeat period; routers count missed beats, so failover speed follows from it.',
  ),
  ms(
    'drainGraceMs',
    'drain-grace-ms',
    DEFAULT_DRAIN_GRACE_MS,
    'How long SIGTERM waits for in-flight requests before handing the rest over.',
    0,
  ),
  ms(
    'orphanTimeoutMs',
    'orphan-timeout-ms',
    DEFAULT_ORPHAN_TIMEOUT_MS,
    'A router silent this long is gone: its requests are cancelled to free their slots.',
  ),
  {
    key: 'warmup',
    flag: 'warmup',
    env: env('warmup'),
    type: 'bool',
    default: true,
    doc: 'Run one generation before announcing readiness (`--warmup=false` starts faster).',
  },
  {
    key: 'allowFaultInjection',
    flag: 'allow-fault-injection',
    env: 'SWITCHYARD_ALLOW_FAULT_INJECTION',
    type: 'bool',
    default: false,
    doc: 'Obey fault-injection messages (tests and the chaos suite only; never in production).',
  },
  {
    key: 'logPrompts',
    flag: 'log-prompts',
    env: env('log-prompts'),
    type: 'bool',
    default: false,
    doc: "Put each request's prompt and generated text on its 'request done' log line (info). Off: no prompt or completion text is ever logged.",
  },
  {
    key: 'echo',
    flag: 'echo',
    env: env('echo'),
    type: 'bool',
    default: false,
    doc: 'Serve the echo engine (prompt bytes echoed back, no model): only for router benchmarks.',
  },
  {
    key: 'modelCacheDir',
    flag: 'model-cache',
    env: MODEL_CACHE_ENV,
    type: 'path',
    metavar: 'DIR',
    defaultText: '$XDG_CACHE_HOME/switchyard/models (~/.cache/switchyard/models)',
    doc: 'Where registry versions are kept by digest; a replica restarts from here while the registry is unreachable.',
  },
  ms(
    'registryTimeoutMs',
    'registry-timeout-ms',
    DEFAULT_REGISTRY_TIMEOUT_MS,
    'How long a registry model may take to resolve before the replica starts from its digest cache instead.',
  ),
  metricsPort(),
  metricsHost(),
  logLevelDef(),
  ...natsDefs(DEFAULT_SERVERS_TEXT),
];

/** Options of `switchyard replica`. */
export const REPLICA_TABLE: OptionTable = {
  section: 'replica',
  summary: 'Serve one model on one device (a GPU or the CPU), with continuous batching.',
  defs,
};
