/** The `bridge` subcommand's options: one line each, from which flags, env, file keys, help and docs come. */
import {
  DEFAULT_CACHE_BUCKET,
  DEFAULT_CACHE_MAX_VALUE_BYTES,
  DEFAULT_CACHE_TTL_MS,
  type ResponseCacheOptions,
} from '../bridge/cache.ts';
import {
  DEFAULT_BODY_TIMEOUT_MS,
  DEFAULT_BRIDGE_HOST,
  DEFAULT_BRIDGE_PORT,
  DEFAULT_DRAIN_GRACE_MS,
  DEFAULT_GENERATION_TIMEOUT_MS,
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type BridgeOptions,
} from '../bridge/options.ts';
import {
  DEFAULT_RATE_LIMIT_BUCKET,
  DEFAULT_RATE_LIMIT_FAIL_MODE,
  DEFAULT_RATE_LIMIT_KV_TIMEOUT_MS,
  DEFAULT_RATE_LIMIT_TTL_MS,
  RATE_LIMIT_FAIL_MODES,
  RATE_WINDOW_MS,
  type RateLimitOptions,
} from '../bridge/rate-limit-options.ts';
import type { ConnectionOptions } from '../cluster/connection.ts';
import { ID_PATTERN } from '../cluster/subjects.ts';
import {
  DEFAULT_SERVERS_TEXT,
  PORT_RANGE,
  idDef,
  logLevelDef,
  natsDefs,
  type CommonSettings,
  defBuilders,
} from './common-options.ts';
import type { OptionDef, OptionTable } from './option.ts';

/** Environment variable of the API keys file (shared by `bridge` and `up`). */
export const KEYS_FILE_ENV = 'SWITCHYARD_KEYS_FILE';

/** A bridge's settings as resolved: its options (policies still as their settings) plus what only the CLI uses. */
export interface BridgeSettings extends Omit<BridgeOptions, 'policies' | 'nats'>, CommonSettings {
  host: string;
  port: number;
  nats: ConnectionOptions;
  /** API keys file; none runs without keys (every caller anonymous). */
  keysFile?: string;
  rateLimit: RateLimitOptions;
  cache: ResponseCacheOptions;
}

const { env, int, ms } = defBuilders('bridge');

/** A NATS KV bucket name (the same rule as actor ids). */
function bucket(key: string, flag: string, fallback: string, doc: string): OptionDef {
  return {
    key,
    flag,
    env: env(flag),
    type: 'string',
    metavar: 'NAME',
    default: fallback,
    check: (v) =>
      typeof v === 'string' && ID_PATTERN.test(v)
        ? undefined
        : `expected a bucket name of [A-Za-z0-9_-]{1,64}, got '${String(v)}'`,
    doc,
  };
}

/** `--host`, shared with `up` (which places the bridge). */
export function bridgeHostDef(): OptionDef {
  return {
    key: 'host',
    flag: 'host',
    env: env('host'),
    type: 'string',
    default: DEFAULT_BRIDGE_HOST,
    check: (v) => (v === '' ? 'expected a host name or address, got an empty value' : undefined),
    doc: 'Address the HTTP bridge listens on; loopback by default, since exposing it should be a decision.',
  };
}

/** `--port`, shared with `up`. */
export function bridgePortDef(): OptionDef {
  return {
    key: 'port',
    flag: 'port',
    env: env('port'),
    type: 'int',
    ...PORT_RANGE,
    default: DEFAULT_BRIDGE_PORT,
    doc: 'Port of the HTTP bridge (API, web page, /metrics); 0 picks a free one.',
  };
}

/** `--allowed-hosts`: the `Host` names the bridge answers (DNS rebinding protection). */
export function allowedHostsDef(): OptionDef {
  return {
    key: 'allowedHosts',
    flag: 'allowed-hosts',
    env: env('allowed-hosts'),
    type: 'list',
    metavar: 'NAME',
    defaultText: 'none: a loopback bind answers localhost, 127.0.0.1 and [::1] only',
    check: (v) =>
      Array.isArray(v) && v.every((h) => typeof h === 'string' && h.trim() !== '')
        ? undefined
        : 'expected host names, comma-separated',
    doc:
      'Host names (Host header, any port) the bridge answers besides the loopback names, comma-separated; ' +
      '`*` answers any. Needed when --host is not loopback (e.g. the Service DNS name in Kubernetes).',
  };
}

/** `--keys-file`, shared with `up`. */
export function keysFileDef(key: string): OptionDef {
  return {
    key,
    flag: 'keys-file',
    env: KEYS_FILE_ENV,
    type: 'path',
    defaultText: 'none: no API keys',
    doc: 'JSON or YAML file of API keys with their rpm, tpm and max_concurrency (format in src/bridge/keys-file.ts).',
  };
}

/** `--cache`, shared with `up`. */
export function cacheDef(key: string): OptionDef {
  return {
    key,
    flag: 'cache',
    env: env('cache'),
    type: 'bool',
    default: false,
    doc: 'Cache whole generations of deterministic requests (temperature 0, or a seed) in NATS KV.',
  };
}

const defs: OptionDef[] = [
  { ...idDef('bridge'), doc: "Unique bridge id; it names the bridge's logs and NATS connection." },
  bridgeHostDef(),
  bridgePortDef(),
  allowedHostsDef(),
  int(
    'maxBodyBytes',
    'max-body-bytes',
    DEFAULT_MAX_BODY_BYTES,
    'Largest request body; a larger one is answered 413.',
  ),
  ms(
    'headersTimeoutMs',
    'headers-timeout-ms',
    DEFAULT_HEADERS_TIMEOUT_MS,
    'Time a client has to send its request line and headers (cuts off slow clients).',
  ),
  ms(
    'requestTimeoutMs',
    'request-timeout-ms',
    DEFAULT_REQUEST_TIMEOUT_MS,
    'Time a client has to send the whole request; at least the headers timeout.',
  ),
  ms(
    'bodyTimeoutMs',
    'body-timeout-ms',
    DEFAULT_BODY_TIMEOUT_MS,
    'Time from the end of the headers to the end of the body (answered 408).',
  ),
  ms(
    'generationTimeoutMs',
    'generation-timeout-ms',
    DEFAULT_GENERATION_TIMEOUT_MS,
    'Deadline of one generation (answered 504); long CPU generations take minutes.',
  ),
  ms(
    'drainGraceMs',
    'drain-grace-ms',
    DEFAULT_DRAIN_GRACE_MS,
    'How long SIGTERM lets in-flight requests finish before cancelling them.',
    0,
  ),
  keysFileDef('keysFile'),
  bucket(
    'rateLimit.bucket',
    'rate-limit-bucket',
    DEFAULT_RATE_LIMIT_BUCKET,
    'NATS KV bucket of the per-key rpm/tpm counters; every bridge of a cluster must use the same one.',
  ),
  ms(
    'rateLimit.ttlMs',
    'rate-limit-ttl-ms',
    DEFAULT_RATE_LIMIT_TTL_MS,
    'TTL of the rate limit bucket, more than one minute window (applies when this bridge creates it).',
    RATE_WINDOW_MS + 1,
  ),
  {
    key: 'rateLimit.failMode',
    flag: 'rate-limit-fail-mode',
    env: env('rate-limit-fail-mode'),
    type: 'string',
    choices: RATE_LIMIT_FAIL_MODES,
    default: DEFAULT_RATE_LIMIT_FAIL_MODE,
    doc: 'When the counters cannot be reached: `open` admits without rpm/tpm limits, `closed` answers 503.',
  },
  ms(
    'rateLimit.kvTimeoutMs',
    'rate-limit-kv-timeout-ms',
    DEFAULT_RATE_LIMIT_KV_TIMEOUT_MS,
    'A rate limit KV request slower than this counts as the store being unreachable.',
  ),
  cacheDef('cache.enabled'),
  bucket(
    'cache.bucket',
    'cache-bucket',
    DEFAULT_CACHE_BUCKET,
    'NATS KV bucket of the response cache; bridges that share it share the cache.',
  ),
  ms(
    'cache.ttlMs',
    'cache-ttl-ms',
    DEFAULT_CACHE_TTL_MS,
    'How long a generation stays cached (bucket TTL; applies when this bridge creates it).',
  ),
  int(
    'cache.maxValueBytes',
    'cache-max-value-bytes',
    DEFAULT_CACHE_MAX_VALUE_BYTES,
    'Largest cached generation; larger ones are served but not cached.',
  ),
  logLevelDef(),
  ...natsDefs(DEFAULT_SERVERS_TEXT),
];

/** Options of `switchyard bridge`. */
export const BRIDGE_TABLE: OptionTable = {
  section: 'bridge',
  summary: 'Serve the OpenAI-compatible HTTP API and the web page, over the NATS front door.',
  defs,
};
