/**
 * Structured JSON logs (pino). Every line carries the actor's role and id; request-scoped
 * children add the request id. Lines logged inside a span carry its trace_id and span_id
 * (log-context.ts). No prompt text is logged unless explicitly enabled.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { traceMixin } from './log-context.ts';

/** Log levels accepted by the `--log-level` option. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Default log level. */
export const DEFAULT_LOG_LEVEL: LevelWithSilent = 'info';

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  role: string;
  id: string;
  /** @default DEFAULT_LOG_LEVEL, or SWITCHYARD_LOG_LEVEL */
  level?: LevelWithSilent;
  /** Where lines go (tests capture them here). @default stderr, asynchronously */
  destination?: DestinationStream;
}

/** A logger for one actor process; writes JSON lines to stderr so stdout stays for progress. */
export function createLogger(opts: LoggerOptions): Logger {
  const level =
    opts.level ?? (process.env.SWITCHYARD_LOG_LEVEL as LevelWithSilent | undefined) ?? DEFAULT_LOG_LEVEL;
  return pino(
    { level, base: { role: opts.role, actor: opts.id }, mixin: traceMixin },
    opts.destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

export type { Logger };
