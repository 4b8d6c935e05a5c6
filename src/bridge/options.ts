/** HTTP bridge options, their defaults, and the one function that fills and checks them. */
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/nats-core';
import type { ConnectionOptions } from '../cluster/connection.ts';
import { checkActorId, checkMs } from '../config/checks.ts';
import { StartupError } from '../errors/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { ANY_HOST, isLoopbackBind } from './host-check.ts';
import type { Authenticator, RateLimiter, ResponseCache } from './policy.ts';

/** Loopback only: exposing an unauthenticated inference endpoint must be a decision, not a default. */
export const DEFAULT_BRIDGE_HOST = '127.0.0.1';
/** The port OpenAI-compatible local servers conventionally use. */
export const DEFAULT_BRIDGE_PORT = 8080;
/** Largest request body: a maximal prompt (262144 characters) fits, with room for JSON escapes. */
export const DEFAULT_MAX_BODY_BYTES = 1_048_576;
/** A client must send its request line and headers within this; slowloris clients are cut off. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
/** Time to receive the whole request (headers and body), enforced by node:http. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/**
 * Time from the end of the headers to the end of the body, enforced by the bridge itself: node's
 * own check runs only every `connectionsCheckingInterval` and answers without a JSON body.
 */
export const DEFAULT_BODY_TIMEOUT_MS = 10_000;
/** Deadline of one generation, from the moment its request is sent (long CPU generations take minutes). */
export const DEFAULT_GENERATION_TIMEOUT_MS = 120_000;
/** How long `stop()` lets in-flight requests finish before cancelling them. */
export const DEFAULT_DRAIN_GRACE_MS = 10_000;
/** How often node:http checks the header and request timeouts (its own default is 30 s). */
export const DEFAULT_CONNECTIONS_CHECK_INTERVAL_MS = 1_000;
/** Idle keep-alive connections are closed after this (node's default: 5 s). */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Period of the cluster snapshots `GET /v1/cluster/stream` sends. */
export const DEFAULT_CLUSTER_STREAM_INTERVAL_MS = 1_000;

/** What a policy factory may use: the bridge's own NATS connection (KV buckets) and logger. */
export interface PolicyContext {
  nc: NatsConnection;
  log: Logger;
}

/** A policy, or a function that builds one once the bridge is connected to NATS. */
export type PolicySource<T> = T | ((ctx: PolicyContext) => T | Promise<T>);

/**
 * The per-request policies. Each absent one is the disabled default (`policy-defaults.ts`): no
 * keys (every caller is anonymous), no limits, no cache. A policy with a `close()` method has it
 * called when the bridge stops.
 */
export interface BridgePolicies {
  auth?: PolicySource<Authenticator>;
  limiter?: PolicySource<RateLimiter>;
  cache?: PolicySource<ResponseCache>;
}

/** What a user sets to run a bridge. */
export interface BridgeOptions {
  /** Unique id, in logs. @default `bridge-<host>-<random>` */
  id?: string;
  /** Interface to listen on. @default DEFAULT_BRIDGE_HOST ('127.0.0.1') */
  host?: string;
  /** TCP port; 0 picks a free one (see `Bridge.port`). @default DEFAULT_BRIDGE_PORT (8080) */
  port?: number;
  /**
   * Host names (`Host` header, any port) the bridge answers besides the loopback names a
   * loopback bind always answers; `*` answers any. A bridge bound to another address than
   * loopback needs at least one (DNS rebinding protection, `host-check.ts`). @default []
   */
  allowedHosts?: readonly string[];
  /** How to reach NATS. @default {} (nats://127.0.0.1:4222) */
  nats?: ConnectionOptions;
  /** Larger bodies are refused with 413. @default DEFAULT_MAX_BODY_BYTES (1 MiB) */
  maxBodyBytes?: number;
  /** node:http `headersTimeout`. @default DEFAULT_HEADERS_TIMEOUT_MS (10000) */
  headersTimeoutMs?: number;
  /** node:http `requestTimeout`; at least headersTimeoutMs. @default DEFAULT_REQUEST_TIMEOUT_MS (30000) */
  requestTimeoutMs?: number;
  /** Body-read timeout (answered 408). @default DEFAULT_BODY_TIMEOUT_MS (10000) */
  bodyTimeoutMs?: number;
  /** Deadline of each generation (answered 504). @default DEFAULT_GENERATION_TIMEOUT_MS (120000) */
  generationTimeoutMs?: number;
  /** Drain grace of `stop()`. @default DEFAULT_DRAIN_GRACE_MS (10000) */
  drainGraceMs?: number;
  /** @default DEFAULT_KEEP_ALIVE_TIMEOUT_MS (5000) */
  keepAliveTimeoutMs?: number;
  /** @default DEFAULT_CLUSTER_STREAM_INTERVAL_MS (1000) */
  clusterStreamIntervalMs?: number;
  /** API keys, rate limits, response cache. @default all disabled */
  policies?: BridgePolicies;
  /** Folder served at `/` (the web page). @default `src/bridge/static` */
  staticDir?: string;
}

/** {@link BridgeOptions} checked, with every default filled in. */
export interface CompiledBridgeOptions {
  id: string;
  host: string;
  port: number;
  allowedHosts: readonly string[];
  nats: ConnectionOptions;
  maxBodyBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  bodyTimeoutMs: number;
  generationTimeoutMs: number;
  drainGraceMs: number;
  keepAliveTimeoutMs: number;
  clusterStreamIntervalMs: number;
  policies: BridgePolicies;
  staticDir: string;
}

/** Highest TCP port. */
const PORT_MAX = 65_535;

/** Where the web page lives in the repository. */
export const DEFAULT_STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));

/** Fills defaults and rejects contradictions with a {@link StartupError} naming the option. */
export function compileBridgeOptions(opts: BridgeOptions = {}): CompiledBridgeOptions {
  const port = opts.port ?? DEFAULT_BRIDGE_PORT;
  if (!Number.isInteger(port) || port < 0 || port > PORT_MAX) {
    throw new StartupError('config', `bridge port must be an integer from 0 to ${PORT_MAX}, got ${port}`);
  }
  const host = opts.host ?? DEFAULT_BRIDGE_HOST;
  if (typeof host !== 'string' || host === '') {
    throw new StartupError('config', 'bridge host must be a host name or address, got an empty value');
  }
  const allowedHosts = [...(opts.allowedHosts ?? [])].map((h) => h.trim()).filter((h) => h !== '');
  for (const h of allowedHosts) {
    if (h !== ANY_HOST && !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(h)) {
      throw new StartupError('config', `allowedHosts: '${h}' is not a host name, an address or ${ANY_HOST}`);
    }
  }
  if (!isLoopbackBind(host) && allowedHosts.length === 0) {
    throw new StartupError(
      'config',
      `the bridge listens on ${host}, which is not loopback: give allowedHosts (--allowed-hosts) with the ` +
        `host names clients reach it by (e.g. the Service's DNS name), or ${ANY_HOST} to answer any name`,
    );
  }
  const headersTimeoutMs = checkMs('headersTimeoutMs', opts.headersTimeoutMs, DEFAULT_HEADERS_TIMEOUT_MS);
  const requestTimeoutMs = checkMs('requestTimeoutMs', opts.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS);
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new StartupError(
      'config',
      `headersTimeoutMs (${headersTimeoutMs}) must not exceed requestTimeoutMs (${requestTimeoutMs})`,
    );
  }
  return {
    id: checkActorId('bridge', opts.id),
    host,
    port,
    allowedHosts,
    nats: opts.nats ?? {},
    maxBodyBytes: checkMs('maxBodyBytes', opts.maxBodyBytes, DEFAULT_MAX_BODY_BYTES),
    headersTimeoutMs,
    requestTimeoutMs,
    bodyTimeoutMs: checkMs('bodyTimeoutMs', opts.bodyTimeoutMs, DEFAULT_BODY_TIMEOUT_MS),
    generationTimeoutMs: checkMs(
      'generationTimeoutMs',
      opts.generationTimeoutMs,
      DEFAULT_GENERATION_TIMEOUT_MS,
    ),
    drainGraceMs: checkMs('drainGraceMs', opts.drainGraceMs, DEFAULT_DRAIN_GRACE_MS, 0),
    keepAliveTimeoutMs: checkMs('keepAliveTimeoutMs', opts.keepAliveTimeoutMs, DEFAULT_KEEP_ALIVE_TIMEOUT_MS),
    clusterStreamIntervalMs: checkMs(
      'clusterStreamIntervalMs',
      opts.clusterStreamIntervalMs,
      DEFAULT_CLUSTER_STREAM_INTERVAL_MS,
    ),
    policies: opts.policies ?? {},
    staticDir: opts.staticDir ?? DEFAULT_STATIC_DIR,
  };
}
