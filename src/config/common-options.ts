/**
 * Options every actor shares: how to reach NATS (mapped onto {@link ConnectionOptions} with the
 * environment names chosen in `src/cluster/connection.ts`), and the log level.
 */
import { CONNECTION_ENV, DEFAULT_SERVERS, type ConnectionOptions } from '../cluster/connection.ts';
import { ID_PATTERN } from '../cluster/subjects.ts';
import { DEFAULT_LOG_LEVEL, LOG_LEVELS } from '../telemetry/logger.ts';
import { DEFAULT_METRICS_HOST } from '../telemetry/metrics-address.ts';
import type { OptionDef } from './option.ts';

/** One of the telemetry logger's levels. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Environment variable of the log level (the logger reads the same name). */
export const LOG_LEVEL_ENV = 'SWITCHYARD_LOG_LEVEL';

/** Settings shared by every actor, as the resolver fills them. */
export interface CommonSettings {
  nats: ConnectionOptions;
  logLevel: LogLevel;
}

/**
 * The NATS connection options. `serversDefault` differs by subcommand: actors connect to a
 * local server by default, `up` starts one of its own.
 */
export function natsDefs(serversDefault: string): OptionDef[] {
  const shared = { shared: true } as const;
  return [
    {
      ...shared,
      key: 'nats.servers',
      flag: 'nats',
      env: CONNECTION_ENV.servers,
      type: 'list',
      metavar: 'URL',
      doc: 'NATS server URLs, comma-separated for a cluster (nats://host:port, tls://host:port).',
      defaultText: serversDefault,
    },
    {
      ...shared,
      key: 'nats.user',
      flag: 'nats-user',
      env: CONNECTION_ENV.user,
      type: 'string',
      doc: 'NATS user name; needs a password.',
    },
    {
      ...shared,
      key: 'nats.pass',
      flag: 'nats-password',
      env: CONNECTION_ENV.pass,
      type: 'string',
      secret: true,
      doc: 'NATS password; prefer the environment or the file to a flag, which other users can see in `ps`.',
    },
    {
      ...shared,
      key: 'nats.token',
      flag: 'nats-token',
      env: CONNECTION_ENV.token,
      type: 'string',
      secret: true,
      doc: 'NATS authentication token (instead of user and password).',
    },
    {
      ...shared,
      key: 'nats.nkeySeedFile',
      flag: 'nats-nkey-seed-file',
      env: CONNECTION_ENV.nkeySeedFile,
      type: 'path',
      doc: 'File holding an nkey seed (SU…).',
    },
    {
      ...shared,
      key: 'nats.credsFile',
      flag: 'nats-creds-file',
      env: CONNECTION_ENV.credsFile,
      type: 'path',
      doc: 'Decentralised-auth .creds file (JWT and seed).',
    },
    {
      ...shared,
      key: 'nats.tlsCaFile',
      flag: 'nats-tls-ca-file',
      env: CONNECTION_ENV.tlsCaFile,
      type: 'path',
      doc: 'CA bundle that verifies the server (turns TLS on).',
    },
    {
      ...shared,
      key: 'nats.tlsCertFile',
      flag: 'nats-tls-cert-file',
      env: CONNECTION_ENV.tlsCertFile,
      type: 'path',
      doc: 'Client certificate for mutual TLS; needs the key file.',
    },
    {
      ...shared,
      key: 'nats.tlsKeyFile',
      flag: 'nats-tls-key-file',
      env: CONNECTION_ENV.tlsKeyFile,
      type: 'path',
      doc: 'Key of the client certificate.',
    },
  ];
}

/** Where actors connect by default, as help and docs show it. */
export const DEFAULT_SERVERS_TEXT = DEFAULT_SERVERS.join(',');

/** `--log-level`; `up` passes its own default to its children. */
export function logLevelDef(fallback: LogLevel = DEFAULT_LOG_LEVEL): OptionDef {
  return {
    key: 'logLevel',
    flag: 'log-level',
    env: LOG_LEVEL_ENV,
    type: 'string',
    metavar: 'LEVEL',
    choices: LOG_LEVELS,
    default: fallback,
    doc: 'Level of the JSON logs on stderr (progress lines on stdout are always shown).',
  };
}

/** `--id` of an actor; the default is unique across hosts and restarts. */
export function idDef(role: string): OptionDef {
  return {
    key: 'id',
    flag: 'id',
    env: `SWITCHYARD_${role.toUpperCase()}_ID`,
    type: 'string',
    defaultText: `${role}-<host>-<random>`,
    check: (v) =>
      typeof v === 'string' && ID_PATTERN.test(v)
        ? undefined
        : `expected [A-Za-z0-9_-]{1,64} (it becomes a NATS subject token), got '${String(v)}'`,
    doc: `Unique ${role} id in the cluster; it names the ${role}'s subjects, logs and metrics.`,
  };
}

/** Checks a TCP port number; 0 means off where an option says so. */
export const PORT_RANGE = { min: 0, max: 65_535 } as const;

/** Builders of one subcommand's option lines: env names `SWITCHYARD_<SUBCOMMAND>_<FLAG>`. */
export function defBuilders(subcommand: string): {
  env: (flag: string) => string;
  int: (key: string, flag: string, fallback: number, doc: string, min?: number) => OptionDef;
  ms: (key: string, flag: string, fallback: number, doc: string, min?: number) => OptionDef;
  /** A string option with no default. */
  text: (key: string, flag: string, metavar: string, doc: string) => OptionDef;
  /** A bare flag, off unless given. */
  bool: (key: string, flag: string, doc: string) => OptionDef;
  /** `--by NAME`: who is acting, as a command records it (default `user@host`). */
  by: (doc: string) => OptionDef;
  metricsPort: () => OptionDef;
  metricsHost: () => OptionDef;
} {
  const env = (flag: string): string =>
    `SWITCHYARD_${subcommand.toUpperCase()}_${flag.toUpperCase().replaceAll('-', '_')}`;
  return {
    env,
    int: (key, flag, fallback, doc, min = 1) => ({
      key,
      flag,
      env: env(flag),
      type: 'int',
      min,
      default: fallback,
      doc,
    }),
    ms: (key, flag, fallback, doc, min = 1) => ({
      key,
      flag,
      env: env(flag),
      type: 'duration-ms',
      min,
      default: fallback,
      doc,
    }),
    text: (key, flag, metavar, doc) => ({ key, flag, env: env(flag), type: 'string', metavar, doc }),
    bool: (key, flag, doc) => ({ key, flag, env: env(flag), type: 'bool', default: false, doc }),
    by: (doc) => ({
      key: 'by',
      flag: 'by',
      env: env('by'),
      type: 'string',
      metavar: 'NAME',
      defaultText: 'user@host',
      doc,
    }),
    metricsPort: () => ({
      key: 'metricsPort',
      flag: 'metrics-port',
      env: env('metrics-port'),
      type: 'int',
      ...PORT_RANGE,
      default: 0,
      doc: 'Port of the Prometheus /metrics endpoint; 0 turns it off.',
    }),
    metricsHost: () => metricsHostDef(env('metrics-host')),
  };
}

/** `--metrics-host`: where a router's or replica's /metrics listens (`up` hands its own down). */
export function metricsHostDef(envName: string): OptionDef {
  return {
    key: 'metricsHost',
    flag: 'metrics-host',
    env: envName,
    type: 'string',
    metavar: 'ADDR',
    default: DEFAULT_METRICS_HOST,
    check: (v) => (v === '' ? 'expected a host name or address, got an empty value' : undefined),
    doc: 'Address /metrics listens on; 0.0.0.0 in a pod, so Prometheus can scrape it.',
  };
}
