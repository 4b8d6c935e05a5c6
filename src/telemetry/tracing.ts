/**
 * The process's OpenTelemetry tracer provider: one per actor process, configured by the standard
 * `OTEL_*` environment (see tracing-options.ts). Built from the SDK's parts rather than
 * `@opentelemetry/sdk-node`, which also starts metrics, logs and instrumentations we do not use,
 * and which exports to localhost:4318 when nothing is configured (DESIGN.md "Pitfalls").
 *
 * Code that makes spans never needs the {@link Tracing} handle: it uses the global API
 * (propagation.ts), which is a no-op until this runs. Without an exporter the provider still
 * makes real spans (nothing leaves the process), so log lines carry trace ids that join the
 * logs of every actor a request went through.
 */
import { context, diag, DiagLogLevel, propagation, trace, type DiagLogger } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator, loggingErrorHandler, setGlobalErrorHandler } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { SWITCHYARD_ATTRS } from './attributes.ts';
import {
  compileTracingOptions,
  type CompiledTracingOptions,
  SERVICE_NAMESPACE,
  type OtlpProtocol,
  type TracesExporter,
  type TracingLogger,
  type TracingOptions,
} from './tracing-options.ts';

/** At most one export-failure log line per this many milliseconds (a collector that is down fails every batch). */
export const EXPORT_ERROR_LOG_INTERVAL_MS = 30_000;

/** The running tracing of this process. */
export interface Tracing {
  /** False when `OTEL_SDK_DISABLED=true` or another `initTracing` already owns the process. */
  readonly active: boolean;
  readonly exporter: TracesExporter;
  readonly protocol: OtlpProtocol;
  /** Where spans are exported; undefined when `exporter` is `none`. */
  readonly url: string | undefined;
  /** Exports the spans ended so far, within the shutdown timeout. Never rejects. */
  flush(): Promise<void>;
  /**
   * Exports what is left and uninstalls the provider, waiting at most the shutdown timeout.
   * Runs once however often it is called; never rejects (export errors are logged). After a
   * timeout the exporter's retries may keep timers pending for up to `OTEL_EXPORTER_OTLP_TIMEOUT`
   * (10 s by default): actor processes end with `process.exit`, so they do not wait for them.
   */
  shutdown(): Promise<void>;
}

/** The provider this process installed, so a second `initTracing` does not replace it. */
let installed: CompiledTracingOptions | undefined;

function silentLogger(): TracingLogger {
  const noop = () => {};
  return { warn: noop, info: noop };
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Reports export failures, at most one line per interval, with a count of the ones held back. */
function exportErrorReporter(logger: TracingLogger): (err: unknown) => void {
  let lastAt = -Infinity;
  let suppressed = 0;
  return (err) => {
    const now = Date.now();
    if (now - lastAt < EXPORT_ERROR_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    logger.warn({ err: describeError(err), suppressed }, 'trace export failed');
    lastAt = now;
    suppressed = 0;
  };
}

/** Routes the SDK's own warnings (dropped spans, bad configuration) to our log. */
function diagLogger(logger: TracingLogger): DiagLogger {
  const warn = (message: string, ...args: unknown[]) =>
    logger.warn({ detail: args.map(describeError) }, `opentelemetry: ${message}`);
  const ignore = () => {};
  return { error: warn, warn, info: ignore, debug: ignore, verbose: ignore };
}

function buildSampler(opts: CompiledTracingOptions): Sampler {
  switch (opts.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(opts.samplerRatio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(opts.samplerRatio) });
  }
}

function buildProcessors(opts: CompiledTracingOptions): SpanProcessor[] {
  if (opts.exporter === 'none' || opts.url === undefined) return [];
  const Exporter = opts.protocol === 'http/json' ? OtlpJsonExporter : OtlpProtobufExporter;
  return [
    new BatchSpanProcessor({
      exporter: new Exporter({ url: opts.url }),
      maxQueueSize: opts.maxQueueSize,
      maxExportBatchSize: opts.maxExportBatchSize,
      scheduledDelayMillis: opts.scheduledDelayMs,
      exportTimeoutMillis: opts.exportTimeoutMs,
    }),
  ];
}

/** Resolves after `ms` (unref'ed: never the reason the process stays up) with `'timeout'`. */
function timeoutAfter(ms: number): Promise<'timeout'> {
  return new Promise((resolve) => setTimeout(() => resolve('timeout'), ms).unref());
}

function inactiveTracing(opts: CompiledTracingOptions): Tracing {
  return {
    active: false,
    exporter: opts.exporter,
    protocol: opts.protocol,
    url: opts.url,
    flush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
}

/**
 * Installs the global tracer provider, W3C propagator and async-local context manager for this
 * process. Throws a `config` StartupError when an `OTEL_*` variable is malformed. Call it once,
 * in the process's entry point, before the actor starts; a second call while one is installed
 * (actors sharing a test process) returns an inactive handle and changes nothing.
 */
export function initTracing(options: TracingOptions): Tracing {
  const opts = compileTracingOptions(options);
  const logger = options.logger ?? silentLogger();
  if (opts.disabled || installed !== undefined) return inactiveTracing(opts);
  installed = opts;

  const provider = new TracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({
        'service.namespace': SERVICE_NAMESPACE,
        ...opts.resourceAttributes,
        'service.name': opts.serviceName,
        'service.instance.id': opts.actorId,
        [SWITCHYARD_ATTRS.role]: opts.role,
      }),
    ),
    sampler: buildSampler(opts),
    spanProcessors: buildProcessors(opts),
  });
  diag.setLogger(diagLogger(logger), { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  setGlobalErrorHandler(exportErrorReporter(logger));
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);

  /** Runs `work` within the timeout; logs (never throws) a failure or an overrun. */
  const bounded = async (what: string, work: () => Promise<void>): Promise<void> => {
    const done = work().then(
      () => 'done' as const,
      (err: unknown) => {
        logger.warn({ err: describeError(err), url: opts.url }, `trace ${what} failed`);
        return 'failed' as const;
      },
    );
    if ((await Promise.race([done, timeoutAfter(opts.shutdownTimeoutMs)])) === 'timeout') {
      logger.warn({ timeoutMs: opts.shutdownTimeoutMs, url: opts.url }, `trace ${what} timed out`);
    }
  };

  let stopping: Promise<void> | undefined;
  return {
    active: true,
    exporter: opts.exporter,
    protocol: opts.protocol,
    url: opts.url,
    flush: () => (stopping !== undefined ? stopping : bounded('flush', () => provider.forceFlush())),
    shutdown: () => {
      stopping ??= bounded('shutdown', () => provider.shutdown()).finally(() => {
        trace.disable();
        propagation.disable();
        context.disable();
        diag.disable();
        setGlobalErrorHandler(loggingErrorHandler());
        installed = undefined;
      });
      return stopping;
    },
  };
}
