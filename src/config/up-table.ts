/** The `up` subcommand's options: a whole single-machine cluster, every actor its own process. */
import type { ConnectionOptions } from '../cluster/connection.ts';
import { allowedHostsDef, bridgeHostDef, bridgePortDef, cacheDef, keysFileDef } from './bridge-table.ts';
import { logLevelDef, metricsHostDef, natsDefs, type CommonSettings } from './common-options.ts';
import { parseGpus } from './gpus.ts';
import type { OptionDef, OptionTable } from './option.ts';
import { modelDef } from './replica-table.ts';
import { captureDefs } from './router-table.ts';

/** Replicas `up` starts without `--replicas` or `--gpus`. */
export const DEFAULT_UP_REPLICAS = 1;
/** Routers `up` starts without `--routers`. */
export const DEFAULT_UP_ROUTERS = 1;
/**
 * Log level `up` gives its children: their JSON logs share the terminal with the progress
 * lines, so only warnings and errors show unless asked.
 */
export const DEFAULT_UP_LOG_LEVEL = 'warn';

/** `up`'s settings as resolved. `nats.servers` absent means: start a local nats-server. */
export interface UpSettings extends CommonSettings {
  nats: ConnectionOptions;
  replicas: number;
  routers: number;
  model: string;
  /** `all` or `0,1`, checked by the table; {@link resolveUpConfig} turns it into GPU ordinals. */
  gpus?: string;
  /** Every replica's device, or with `gpus` the provider of the GPUs it lists (`cuda` without it). */
  device?: string;
  threads?: number;
  /** Where the bridge listens; port 0 lets it pick a free one. */
  host: string;
  port: number;
  /** Handed to the bridge as `--keys-file`. */
  keysFile?: string;
  /** Handed to the bridge as `--allowed-hosts` (needed when `--host` is not a loopback address). */
  allowedHosts?: string[];
  /** Handed to the bridge as `--cache` when given to `up`. */
  cache: boolean;
  metrics: boolean;
  /** Handed to every router and replica as `--metrics-host`. */
  metricsHost: string;
  /** Run the local nats-server without credentials or permissions (as before secure-by-default). */
  insecure: boolean;
  /** Start a collector (capture needs one only to turn events into records and datasets). */
  collector: boolean;
  /** Store the model folder in the registry and start replicas from `registry://<id>@stable`. */
  registry: boolean;
  /** Handed to every router as `--capture*`. */
  capture: {
    enabled: boolean;
    models?: string[];
    sample: string;
    text: boolean;
    redact: boolean;
    bufferEvents: number;
  };
}

const env = (flag: string): string => `SWITCHYARD_UP_${flag.toUpperCase().replaceAll('-', '_')}`;

const defs: OptionDef[] = [
  {
    key: 'collector',
    flag: 'collector',
    env: env('collector'),
    type: 'bool',
    default: true,
    doc: 'Start a collector, which turns captured completions and feedback into records, stats and datasets; --collector=false leaves it out (the streams still keep events).',
  },
  {
    key: 'registry',
    flag: 'registry',
    env: env('registry'),
    type: 'bool',
    default: true,
    doc: 'Store the --model folder in the model registry (when it lacks that content) and start replicas from registry://<id>@stable, so that moving the alias hot swaps them; --registry=false serves the folder directly.',
  },
  ...captureDefs(env),
  {
    key: 'replicas',
    flag: 'replicas',
    env: env('replicas'),
    type: 'int',
    min: 1,
    default: DEFAULT_UP_REPLICAS,
    doc: 'Replicas to start (on the CPU unless --gpus is given).',
  },
  {
    key: 'routers',
    flag: 'routers',
    env: env('routers'),
    type: 'int',
    min: 1,
    default: DEFAULT_UP_ROUTERS,
    doc: 'Routers to start; they share the front door in one queue group.',
  },
  modelDef('model'),
  {
    key: 'gpus',
    flag: 'gpus',
    env: env('gpus'),
    type: 'string',
    metavar: 'all|0,1',
    defaultText: 'none (CPU)',
    check: (v) => {
      const parsed = parseGpus(String(v));
      return typeof parsed === 'string' ? parsed : undefined;
    },
    doc: 'One replica per listed GPU, each pinned to it with the provider --device names (cuda unless --device webgpu); `all` counts them with nvidia-smi.',
  },
  {
    key: 'device',
    flag: 'device',
    env: env('device'),
    type: 'string',
    metavar: 'cpu|cuda[:N]|webgpu[:N]',
    defaultText: 'cpu (cuda with --gpus)',
    check: (v) =>
      /^(cpu|cuda(:\d{1,3})?|webgpu(:\d{1,3})?)$/.test(String(v))
        ? undefined
        : `expected cpu, cuda[:N] or webgpu[:N] (e.g. webgpu), got '${String(v)}'`,
    doc: 'Device of every replica; with --gpus, the provider of the GPUs it lists (a kind: cuda or webgpu).',
  },
  {
    key: 'threads',
    flag: 'threads',
    env: env('threads'),
    type: 'int',
    min: 1,
    defaultText: 'cores / replicas, at least 1',
    doc: 'onnxruntime intra-op threads of each replica.',
  },
  bridgeHostDef(),
  bridgePortDef(),
  keysFileDef('keysFile'),
  { ...allowedHostsDef(), env: env('allowed-hosts') },
  cacheDef('cache'),
  {
    key: 'metrics',
    flag: 'metrics',
    env: env('metrics'),
    type: 'bool',
    default: true,
    doc: 'Give every router and replica a Prometheus /metrics port (free ports, listed in the summary; the bridge serves its own on --port). --metrics=false turns them off.',
  },
  { ...metricsHostDef(env('metrics-host')), doc: 'Address the routers and replicas serve /metrics on.' },
  {
    key: 'insecure',
    flag: 'insecure',
    env: env('insecure'),
    type: 'bool',
    default: false,
    doc: "Run the local nats-server without credentials: any local process can read and inject traffic. Without it, up gives every actor its own nkey with its role's permissions and writes a client and an operator credential (paths in the summary). Only then are --nats-user/--nats-password/--nats-token accepted without --nats.",
  },
  { ...logLevelDef(DEFAULT_UP_LOG_LEVEL), doc: 'Level of the JSON logs of every child process (stderr).' },
  ...natsDefs('none: start a local nats-server on a free port'),
];

/** Options of `switchyard up`. */
export const UP_TABLE: OptionTable = {
  section: 'up',
  summary:
    'Start a whole single-machine cluster: nats-server (unless --nats), routers, replicas and the HTTP bridge.',
  defs,
};
