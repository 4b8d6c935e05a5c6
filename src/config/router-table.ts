/** The `router` subcommand's options: one line each, from which flags, env, file keys, help and docs come. */
import type { ConnectionOptions } from '../cluster/connection.ts';
import {
  DEFAULT_DEAD_AFTER_MISSED,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_ROUTER_DRAIN_GRACE_MS,
  DEFAULT_ROUTER_HEARTBEAT_INTERVAL_MS,
  DEFAULT_STALL_TIMEOUT_MS,
  DEFAULT_STUCK_TIMEOUT_MS,
  DEFAULT_SUSPECT_AFTER_MISSED,
  ROUTING_STRATEGIES,
  type RouterOptions,
  type RoutingStrategyName,
} from '../router/options.ts';
import {
  DEFAULT_SERVERS_TEXT,
  idDef,
  logLevelDef,
  natsDefs,
  type CommonSettings,
  defBuilders,
} from './common-options.ts';
import type { OptionDef, OptionTable } from './option.ts';
import { DEFAULT_CAPTURE_BUFFER_EVENTS } from '../capture/options.ts';

/** A ratio in [0, 1] written as text (`0.25`), or why not. */
function ratioProblem(v: unknown): string | undefined {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) && n >= 0 && n <= 1 ? undefined : 'expected a number in [0, 1], e.g. 0.25';
}

/** The capture options of a router; `up` hands the same flags on to its routers. */
export function captureDefs(env: (flag: string) => string): OptionDef[] {
  return [
    {
      key: 'capture.enabled',
      flag: 'capture',
      env: env('capture'),
      type: 'bool',
      default: true,
      doc: 'Capture every request that ends here as a completion event in JetStream (SY_COMPLETIONS); --capture=false turns it off.',
    },
    {
      key: 'capture.models',
      flag: 'capture-models',
      env: env('capture-models'),
      type: 'list',
      metavar: 'ID',
      defaultText: 'every model',
      doc: 'Capture only these models, comma-separated.',
    },
    {
      key: 'capture.sample',
      flag: 'capture-sample',
      env: env('capture-sample'),
      type: 'string',
      metavar: 'RATIO',
      default: '1',
      check: ratioProblem,
      doc: 'Fraction of requests captured, decided by request id (every router decides alike).',
    },
    {
      key: 'capture.text',
      flag: 'capture-text',
      env: env('capture-text'),
      type: 'bool',
      default: true,
      doc: 'Capture prompts, outputs and token ids; --capture-text=false keeps counts, timings and metadata only.',
    },
    {
      key: 'capture.redact',
      flag: 'capture-redact',
      env: env('capture-redact'),
      type: 'bool',
      default: true,
      doc: 'Replace e-mail addresses, phone, card and IBAN numbers, IP addresses and secrets by placeholders before an event leaves the router (docs/redaction.md).',
    },
    {
      key: 'capture.bufferEvents',
      flag: 'capture-buffer-events',
      env: env('capture-buffer-events'),
      type: 'int',
      min: 1,
      default: DEFAULT_CAPTURE_BUFFER_EVENTS,
      doc: 'Events held while JetStream is slow or gone; past it the oldest are dropped and counted.',
    },
  ];
}

/** Default routing strategy (the first of {@link ROUTING_STRATEGIES}, as compileRouterOptions picks). */
export const DEFAULT_STRATEGY: RoutingStrategyName = 'power-of-two';

/** A router's settings as resolved: its options plus what only the CLI uses. */
export interface RouterSettings extends RouterOptions, CommonSettings {
  nats: ConnectionOptions;
}

const { env, int, ms, metricsPort, metricsHost } = defBuilders('router');

const defs: OptionDef[] = [
  idDef('router'),
  ms(
    'heartbeatIntervalMs',
    'heartbeat-interval-ms',
    DEFAULT_ROUTER_HEARTBEAT_INTERVAL_MS,
    'Router heartbeat period (replicas watch it to find orphaned requests).',
  ),
  int(
    'suspectAfterMissed',
    'suspect-after-missed',
    DEFAULT_SUSPECT_AFTER_MISSED,
    'Replica heartbeats missed before it gets no new work.',
  ),
  int(
    'deadAfterMissed',
    'dead-after-missed',
    DEFAULT_DEAD_AFTER_MISSED,
    'Replica heartbeats missed before it is dead and its requests fail over.',
  ),
  ms(
    'stuckTimeoutMs',
    'stuck-timeout-ms',
    DEFAULT_STUCK_TIMEOUT_MS,
    'A replica with work whose engine makes no progress this long is dead.',
  ),
  ms(
    'stallTimeoutMs',
    'stall-timeout-ms',
    DEFAULT_STALL_TIMEOUT_MS,
    'A started stream with no chunk this long has stalled and fails over.',
  ),
  int('maxAttempts', 'max-attempts', DEFAULT_MAX_ATTEMPTS, 'Attempts per request, the first included.'),
  int(
    'maxInFlight',
    'max-in-flight',
    DEFAULT_MAX_IN_FLIGHT,
    'Requests one router owns at once; one more is answered `busy`.',
  ),
  ms(
    'requestTimeoutMs',
    'request-timeout-ms',
    DEFAULT_REQUEST_TIMEOUT_MS,
    'Deadline of a request that gives none.',
  ),
  {
    key: 'strategy',
    flag: 'strategy',
    env: env('strategy'),
    type: 'string',
    metavar: 'NAME',
    choices: ROUTING_STRATEGIES,
    default: DEFAULT_STRATEGY,
    doc: 'How a replica is chosen for each request.',
  },
  ms(
    'drainGraceMs',
    'drain-grace-ms',
    DEFAULT_ROUTER_DRAIN_GRACE_MS,
    'How long SIGTERM waits for in-flight requests.',
    0,
  ),
  ...captureDefs(env),
  metricsPort(),
  metricsHost(),
  logLevelDef(),
  ...natsDefs(DEFAULT_SERVERS_TEXT),
];

/** Options of `switchyard router`. */
export const ROUTER_TABLE: OptionTable = {
  section: 'router',
  summary: 'Take generate requests at the front door and spread them over live replicas, with failover.',
  defs,
};
