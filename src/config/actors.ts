/**
 * Typed entry points of the configuration layer: one per subcommand, each returning the options
 * object its actor starts with. The generic work happens in `resolve.ts`; this file adds what is
 * particular to one subcommand (up's GPU list and thread split, the bridge's timeouts).
 */
import { availableParallelism } from 'node:os';
import { parseDevice, webgpuIndexRefusal } from '../engine/device.ts';
import { StartupError } from '../errors/errors.ts';
import { BRIDGE_TABLE, type BridgeSettings } from './bridge-table.ts';
import { selectGpus, parseGpus, type NvidiaSmi } from './gpus.ts';
import { describeSource, type OptionSource, type OptionTable } from './option.ts';
import { REPLICA_TABLE, type ReplicaSettings } from './replica-table.ts';
import { resolveTable, type ResolveInput } from './resolve.ts';
import { ROUTER_TABLE, type RouterSettings } from './router-table.ts';
import { UP_TABLE, type UpSettings } from './up-table.ts';
import { COLLECTOR_TABLE, type CollectorSettings } from './collector-table.ts';
import { DATASET_TABLE, type DatasetSettings } from './dataset-table.ts';
import { ROLLOUT_TABLE, type RolloutSettings } from './rollout-table.ts';
import { MODELS_TABLE, type ModelsSettings } from './models-table.ts';
import { TRAIN_TABLE, type TrainSettings } from './train-table.ts';
import { LOOP_TABLE, type LoopSettings } from './loop-table.ts';

/** Every subcommand's options: a config file is checked against all of them. */
export const ALL_TABLES: readonly OptionTable[] = [
  REPLICA_TABLE,
  ROUTER_TABLE,
  BRIDGE_TABLE,
  COLLECTOR_TABLE,
  DATASET_TABLE,
  MODELS_TABLE,
  ROLLOUT_TABLE,
  TRAIN_TABLE,
  LOOP_TABLE,
  UP_TABLE,
];

/** A resolved subcommand: `--help` was asked, or the settings and where each came from. */
export type Resolved<T> =
  | { readonly help: true }
  | {
      readonly help: false;
      readonly settings: T;
      readonly sources: ReadonlyMap<string, OptionSource>;
      /** The config file read, absolute; `up` hands it on to its children. */
      readonly configFile: string | undefined;
    };

function resolveAs<T extends { nats: unknown }>(table: OptionTable, input: ResolveInput): Resolved<T> {
  const r = resolveTable(table, ALL_TABLES, input);
  if (r.help) return { help: true };
  const settings = { nats: {}, ...r.settings } as unknown as T;
  return { help: false, settings, sources: r.sources, configFile: r.configFile };
}

/** Options of `switchyard replica`, ready for `startReplica` (after taking out `logLevel`). */
export function resolveReplicaConfig(input: ResolveInput): Resolved<ReplicaSettings> {
  return resolveAs<ReplicaSettings>(REPLICA_TABLE, input); // `--model` has a default: engine is always set
}

/** Options of `switchyard router`, ready for `startRouter` (after taking out `logLevel`). */
export function resolveRouterConfig(input: ResolveInput): Resolved<RouterSettings> {
  return resolveAs<RouterSettings>(ROUTER_TABLE, input);
}

/** Options of `switchyard collector`, ready for `startCollector` (after taking out `logLevel`). */
export function resolveCollectorConfig(input: ResolveInput): Resolved<CollectorSettings> {
  return resolveAs<CollectorSettings>(COLLECTOR_TABLE, input);
}

/** Options of `switchyard dataset <action>`. */
export function resolveDatasetConfig(input: ResolveInput): Resolved<DatasetSettings> {
  return resolveAs<DatasetSettings>(DATASET_TABLE, input);
}

/** Options of `switchyard models <action>` (the positional arguments taken out). */
export function resolveModelsConfig(input: ResolveInput): Resolved<ModelsSettings> {
  return resolveAs<ModelsSettings>(MODELS_TABLE, input);
}

/** Options of `switchyard rollout`. */
export function resolveRolloutConfig(input: ResolveInput): Resolved<RolloutSettings> {
  return resolveAs<RolloutSettings>(ROLLOUT_TABLE, input);
}

/** Options of `switchyard train`. */
export function resolveTrainConfig(input: ResolveInput): Resolved<TrainSettings> {
  return resolveAs<TrainSettings>(TRAIN_TABLE, input);
}

/** Options of `switchyard loop`. */
export function resolveLoopConfig(input: ResolveInput): Resolved<LoopSettings> {
  return resolveAs<LoopSettings>(LOOP_TABLE, input);
}

/**
 * Options of `switchyard bridge`, ready for `startBridge` once the policy settings are turned into
 * policies. A headers timeout above the request timeout is refused here, naming both sources,
 * rather than by `compileBridgeOptions` in its own option names.
 */
export function resolveBridgeConfig(input: ResolveInput): Resolved<BridgeSettings> {
  const r = resolveAs<BridgeSettings>(BRIDGE_TABLE, input);
  if (r.help) return r;
  const { headersTimeoutMs, requestTimeoutMs } = r.settings;
  if (
    headersTimeoutMs !== undefined &&
    requestTimeoutMs !== undefined &&
    headersTimeoutMs > requestTimeoutMs
  ) {
    const given = (flag: string, key: string, value: number): string => {
      const source = r.sources.get(key) ?? { kind: 'default' };
      if (source.kind === 'flag') return `--${flag} (${value})`;
      return `--${flag} (${value}, ${source.kind === 'default' ? 'the default' : `from ${describeSource(source)}`})`;
    };
    throw new StartupError(
      'config',
      `${given('headers-timeout-ms', 'headersTimeoutMs', headersTimeoutMs)} must not exceed ` +
        `${given('request-timeout-ms', 'requestTimeoutMs', requestTimeoutMs)}`,
    );
  }
  return r;
}

/** `up`'s settings with the GPU list and per-replica threads worked out. */
export interface UpPlan extends UpSettings {
  /** GPU ordinal of each replica, or undefined for CPU replicas. */
  gpuIds: number[] | undefined;
  /** The device each replica is started with (`cpu`, `cuda:N`, `webgpu:N`). */
  replicaDevices: string[];
  /** Intra-op threads of each replica. */
  threads: number;
}

/** What {@link resolveUpConfig} asks the machine; tests replace it. */
export interface MachineProbe {
  nvidiaSmi?: NvidiaSmi;
  cores?: number;
}

/**
 * The device of each replica `up` starts. With `--gpus`, `--device` names the provider (`cuda`
 * unless it says `webgpu`); WebGPU can address only adapter 0 (see `webgpuIndexRefusal`), so a
 * list that needs another is refused before anything starts.
 */
function devicesOf(device: string | undefined, gpuIds: number[] | undefined, replicas: number): string[] {
  if (gpuIds === undefined) {
    const one = device === undefined ? 'cpu' : device === 'cuda' ? 'cuda:0' : device;
    const parsed = parseDevice(one);
    if (parsed.kind === 'webgpu' && parsed.id > 0)
      throw new StartupError('config', webgpuIndexRefusal(parsed.id));
    return Array.from({ length: replicas }, () => (parsed.kind === 'webgpu' ? 'webgpu:0' : one));
  }
  const kind = device ?? 'cuda';
  if (kind !== 'cuda' && kind !== 'webgpu') {
    throw new StartupError(
      'config',
      `--gpus places one replica per GPU with the provider --device names: give --device cuda or --device webgpu, not '${kind}'`,
    );
  }
  if (kind === 'webgpu') {
    const beyond = gpuIds.find((id) => id > 0);
    if (beyond !== undefined)
      throw new StartupError('config', `--gpus ${gpuIds.join(',')}: ${webgpuIndexRefusal(beyond)}`);
  }
  return gpuIds.map((id) => `${kind}:${id}`);
}

/** Options of `switchyard up`; `--gpus all` runs nvidia-smi. */
export function resolveUpConfig(input: ResolveInput, probe: MachineProbe = {}): Resolved<UpPlan> {
  const r = resolveAs<UpSettings>(UP_TABLE, input);
  if (r.help) return r;
  const s = r.settings;
  let gpuIds: number[] | undefined;
  let replicas = s.replicas;
  if (s.gpus !== undefined) {
    const selection = parseGpus(s.gpus);
    if (typeof selection === 'string') throw new StartupError('config', selection); // the table checked it already
    gpuIds = selectGpus(selection, probe.nvidiaSmi, s.device === 'webgpu');
    const replicasSource = r.sources.get('replicas');
    if (replicasSource !== undefined && replicasSource.kind !== 'default' && replicas !== gpuIds.length) {
      const gpusSource = r.sources.get('gpus') ?? { kind: 'default' };
      throw new StartupError(
        'config',
        `${describeSource(replicasSource)} (${replicas}) contradicts ${describeSource(gpusSource)} (${gpuIds.length} GPUs: ${gpuIds.join(',')}): up starts one replica per GPU; leave out the replica count`,
      );
    }
    replicas = gpuIds.length;
  }
  const replicaDevices = devicesOf(s.device, gpuIds, replicas);
  const cores = probe.cores ?? availableParallelism();
  const threads = s.threads ?? Math.max(1, Math.floor(cores / replicas));
  return { ...r, settings: { ...s, replicas, gpuIds, replicaDevices, threads } };
}
