/**
 * Tracing configuration from the standard OpenTelemetry environment variables, resolved in this
 * one place (STYLE.md "Configuration"). The SDK packages used here do not read the environment
 * themselves (`@opentelemetry/sdk-trace`, not the env-reading `sdk-trace-base` shim); only the
 * OTLP exporter still reads its own transport settings (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`,
 * `_COMPRESSION`, certificates), which need no decision of ours.
 *
 * One deliberate deviation from the specification: `OTEL_TRACES_EXPORTER` defaults to `none`
 * unless an OTLP endpoint is set. The specification's default (`otlp` to localhost:4318) makes
 * every actor on a machine without a collector try the network and log export failures
 * (DESIGN.md "Pitfalls"). Setting `OTEL_TRACES_EXPORTER=otlp` alone still gets that default.
 */
import { StartupError } from '../errors/errors.ts';

/** Where finished spans go. */
export type TracesExporter = 'otlp' | 'none';

/** OTLP encodings supported. gRPC is not: its exporter pulls in @grpc/grpc-js for no gain here. */
export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** The samplers of `OTEL_TRACES_SAMPLER` that need no remote configuration. */
export const TRACES_SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type TracesSampler = (typeof TRACES_SAMPLERS)[number];

/** The specification's default sampler: follow the caller's decision, sample new traces. */
export const DEFAULT_TRACES_SAMPLER: TracesSampler = 'parentbased_always_on';
/** The specification's default encoding for OTLP over HTTP. */
export const DEFAULT_OTLP_PROTOCOL: OtlpProtocol = 'http/protobuf';
/** Where `OTEL_TRACES_EXPORTER=otlp` with no endpoint sends spans (the specification's default). */
export const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4318';
/** Path appended to `OTEL_EXPORTER_OTLP_ENDPOINT` (not to the traces-specific endpoint). */
export const OTLP_TRACES_PATH = 'v1/traces';
/** `OTEL_BSP_MAX_QUEUE_SIZE` default: spans past this many waiting are dropped (and counted). */
export const DEFAULT_BSP_MAX_QUEUE_SIZE = 2_048;
/** `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` default. */
export const DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE = 512;
/** `OTEL_BSP_SCHEDULE_DELAY` default, milliseconds between two exports. */
export const DEFAULT_BSP_SCHEDULE_DELAY_MS = 5_000;
/** `OTEL_BSP_EXPORT_TIMEOUT` default, milliseconds. */
export const DEFAULT_BSP_EXPORT_TIMEOUT_MS = 30_000;
/**
 * Longest `Tracing.shutdown()` waits for the last spans to leave. Short: it runs inside an
 * actor's drain, and an unreachable collector must not hold up a SIGTERM.
 */
export const DEFAULT_TRACING_SHUTDOWN_TIMEOUT_MS = 3_000;

/**
 * `service.namespace` of every actor: the cluster they form. `OTEL_RESOURCE_ATTRIBUTES` may set
 * another (two clusters sharing one trace backend).
 */
export const SERVICE_NAMESPACE = 'switchyard';

/**
 * `service.name` of each role, so a trace backend lists the bridge, routers and replicas as the
 * services they are rather than one `switchyard` (`OTEL_SERVICE_NAME` still overrides it).
 */
export const SERVICE_NAMES = {
  bridge: 'switchyard-bridge',
  router: 'switchyard-router',
  replica: 'switchyard-replica',
  collector: 'switchyard-collector',
} as const;

/** The roles a process traces as. */
export type TracedRole = keyof typeof SERVICE_NAMES;

/** Where tracing reports problems (a pino logger fits). */
export interface TracingLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** Options of `initTracing`. Everything else comes from the `OTEL_*` environment. */
export interface TracingOptions {
  /** `service.name` (an actor's is its role's, in {@link SERVICE_NAMES}), unless `OTEL_SERVICE_NAME` is set. */
  serviceName: string;
  /** `service.instance.id`: the actor's id, so spans name the process that made them. */
  actorId: string;
  /** `switchyard.role`: bridge, router, replica, collector. */
  role: string;
  /** Environment to read `OTEL_*` from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** Where export errors and the SDK's own warnings go. @default nowhere */
  logger?: TracingLogger;
  /** Longest `shutdown()` waits. @default DEFAULT_TRACING_SHUTDOWN_TIMEOUT_MS */
  shutdownTimeoutMs?: number;
}

/** {@link TracingOptions} with the environment resolved. */
export interface CompiledTracingOptions {
  /** `OTEL_SDK_DISABLED=true`: no provider is installed and the API stays a no-op. */
  disabled: boolean;
  serviceName: string;
  actorId: string;
  role: string;
  exporter: TracesExporter;
  protocol: OtlpProtocol;
  /** Full traces URL; set exactly when `exporter` is `otlp`. */
  url: string | undefined;
  sampler: TracesSampler;
  /** Ratio of the `traceidratio` samplers, 0..1. */
  samplerRatio: number;
  /** From `OTEL_RESOURCE_ATTRIBUTES`; our own attributes win over these. */
  resourceAttributes: Record<string, string>;
  maxQueueSize: number;
  maxExportBatchSize: number;
  scheduledDelayMs: number;
  exportTimeoutMs: number;
  shutdownTimeoutMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;

function configError(message: string): StartupError {
  return new StartupError('config', message);
}

/** An environment value, with the specification's rule that an empty value means unset. */
function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function readChoice<T extends string>(env: Env, name: string, choices: readonly T[]): T | undefined {
  const value = read(env, name)?.toLowerCase();
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value)) {
    throw configError(`${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

function readPositiveInt(env: Env, name: string, fallback: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw configError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function readUrl(env: Env, name: string): URL | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw configError(`${name} must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw configError(`${name} must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  return url;
}

/** `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`. */
function tracesUrl(env: Env): string | undefined {
  const specific = readUrl(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  if (specific !== undefined) return specific.href;
  const base = readUrl(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (base === undefined) return undefined;
  const href = base.href.endsWith('/') ? base.href : `${base.href}/`;
  return `${href}${OTLP_TRACES_PATH}`;
}

function readExporter(env: Env, url: string | undefined): TracesExporter {
  const raw = read(env, 'OTEL_TRACES_EXPORTER');
  if (raw === undefined) return url === undefined ? 'none' : 'otlp';
  const names = raw
    .toLowerCase()
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = names.filter((n) => n !== 'otlp' && n !== 'none');
  if (unknown.length > 0) {
    throw configError(`OTEL_TRACES_EXPORTER supports otlp and none, got ${JSON.stringify(raw)}`);
  }
  return names.includes('otlp') ? 'otlp' : 'none';
}

function readProtocol(env: Env): OtlpProtocol {
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const raw = read(env, name);
    if (raw === undefined) continue;
    if (raw === 'grpc') {
      throw configError(`${name}=grpc is not supported: use http/protobuf (port 4318) or http/json`);
    }
    return readChoice(env, name, OTLP_PROTOCOLS) ?? DEFAULT_OTLP_PROTOCOL;
  }
  return DEFAULT_OTLP_PROTOCOL;
}

function readSamplerRatio(env: Env, sampler: TracesSampler): number {
  const raw = read(env, 'OTEL_TRACES_SAMPLER_ARG');
  if (raw === undefined || !sampler.endsWith('traceidratio')) return 1;
  const ratio = Number(raw);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw configError(`OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, got ${JSON.stringify(raw)}`);
  }
  return ratio;
}

/** `key=value,key=value`, values percent-encoded (the specification's format). */
function readResourceAttributes(env: Env): Record<string, string> {
  const raw = read(env, 'OTEL_RESOURCE_ATTRIBUTES');
  const attributes: Record<string, string> = {};
  if (raw === undefined) return attributes;
  for (const pair of raw.split(',')) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq).trim();
    if (eq <= 0 || key === '') {
      throw configError(`OTEL_RESOURCE_ATTRIBUTES must be key=value pairs, got ${JSON.stringify(pair)}`);
    }
    try {
      attributes[key] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      throw configError(`OTEL_RESOURCE_ATTRIBUTES has a badly percent-encoded value for ${key}`);
    }
  }
  return attributes;
}

/** Resolves options and environment; throws a `config` {@link StartupError} naming the variable. */
export function compileTracingOptions(opts: TracingOptions): CompiledTracingOptions {
  const env = opts.env ?? process.env;
  const url = tracesUrl(env);
  const exporter = readExporter(env, url);
  const sampler = readChoice(env, 'OTEL_TRACES_SAMPLER', TRACES_SAMPLERS) ?? DEFAULT_TRACES_SAMPLER;
  const maxQueueSize = readPositiveInt(env, 'OTEL_BSP_MAX_QUEUE_SIZE', DEFAULT_BSP_MAX_QUEUE_SIZE);
  const maxExportBatchSize = readPositiveInt(
    env,
    'OTEL_BSP_MAX_EXPORT_BATCH_SIZE',
    Math.min(DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE, maxQueueSize),
  );
  if (maxExportBatchSize > maxQueueSize) {
    throw configError(
      `OTEL_BSP_MAX_EXPORT_BATCH_SIZE (${maxExportBatchSize}) must not exceed OTEL_BSP_MAX_QUEUE_SIZE (${maxQueueSize})`,
    );
  }
  const shutdownTimeoutMs = opts.shutdownTimeoutMs ?? DEFAULT_TRACING_SHUTDOWN_TIMEOUT_MS;
  if (!Number.isFinite(shutdownTimeoutMs) || shutdownTimeoutMs < 0) {
    throw configError(`shutdownTimeoutMs must be a non-negative number, got ${shutdownTimeoutMs}`);
  }
  return {
    disabled: read(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true',
    serviceName: read(env, 'OTEL_SERVICE_NAME') ?? opts.serviceName,
    actorId: opts.actorId,
    role: opts.role,
    exporter,
    protocol: readProtocol(env),
    url: exporter === 'otlp' ? (url ?? `${DEFAULT_OTLP_ENDPOINT}/${OTLP_TRACES_PATH}`) : undefined,
    sampler,
    samplerRatio: readSamplerRatio(env, sampler),
    resourceAttributes: readResourceAttributes(env),
    maxQueueSize,
    maxExportBatchSize,
    scheduledDelayMs: readPositiveInt(env, 'OTEL_BSP_SCHEDULE_DELAY', DEFAULT_BSP_SCHEDULE_DELAY_MS),
    exportTimeoutMs: readPositiveInt(env, 'OTEL_BSP_EXPORT_TIMEOUT', DEFAULT_BSP_EXPORT_TIMEOUT_MS),
    shutdownTimeoutMs,
  };
}
