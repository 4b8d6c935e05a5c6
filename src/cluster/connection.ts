/**
 * The one way an actor connects to NATS. nats.js defaults suit long-lived, patient clients: it
 * notices a hung server only after pingInterval × maxPingOut (4 minutes) and waits 20 s on a
 * frozen node (DESIGN.md pitfalls). A serving cluster must fail over in seconds, so every timing
 * here is chosen deliberately, and failures come back as switchyard errors that say how to fix them.
 */
import { readFileSync } from 'node:fs';
import {
  AuthorizationError,
  PermissionViolationError,
  UserAuthenticationExpiredError,
  credsAuthenticator,
  nkeyAuthenticator,
  type NatsConnection,
} from '@nats-io/nats-core';
import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import {
  ForbiddenError,
  StartupError,
  SwitchyardError,
  UnauthorizedError,
  UnavailableError,
} from '../errors/errors.ts';

/** Where a local nats-server listens by default. */
export const DEFAULT_SERVERS: readonly string[] = ['nats://127.0.0.1:4222'];
/** Client name shown in the server's monitoring pages; actors pass their own (`replica-r1`). */
export const DEFAULT_CONNECTION_NAME = 'switchyard';
/** Client ping period: with {@link DEFAULT_MAX_PING_OUT} a hung server is noticed in ~4 s, not minutes. */
export const DEFAULT_PING_INTERVAL_MS = 2_000;
/** Unanswered pings before the connection counts as stale and reconnects. */
export const DEFAULT_MAX_PING_OUT = 2;
/** Handshake timeout per server: a frozen node must not hold a connect for nats.js' 20 s. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 2_000;
/** Reconnect attempts per server; -1 is forever: an actor outlives a NATS restart. */
export const DEFAULT_MAX_RECONNECT_ATTEMPTS = -1;
/** Wait between reconnect attempts to the same server (nats.js: 2 s). */
export const DEFAULT_RECONNECT_TIME_WAIT_MS = 250;
/** Upper bound of the random delay added to each reconnect wait, so a fleet does not reconnect in lockstep. */
export const DEFAULT_RECONNECT_JITTER_MS = 100;

/**
 * Environment variables that the configuration layer resolves into {@link ConnectionOptions};
 * named here so that error messages can tell a user exactly what to set.
 */
export const CONNECTION_ENV = {
  servers: 'SWITCHYARD_NATS_URL',
  user: 'SWITCHYARD_NATS_USER',
  pass: 'SWITCHYARD_NATS_PASSWORD',
  token: 'SWITCHYARD_NATS_TOKEN',
  nkeySeedFile: 'SWITCHYARD_NATS_NKEY_SEED_FILE',
  credsFile: 'SWITCHYARD_NATS_CREDS_FILE',
  tlsCaFile: 'SWITCHYARD_NATS_TLS_CA_FILE',
  tlsCertFile: 'SWITCHYARD_NATS_TLS_CERT_FILE',
  tlsKeyFile: 'SWITCHYARD_NATS_TLS_KEY_FILE',
} as const;

/** How to reach and authenticate to NATS. Give at most one way to authenticate. */
export interface ConnectionOptions {
  /** `nats://host:port`, `tls://host:port` or `host:port`; several for a cluster. @default DEFAULT_SERVERS */
  servers?: string | readonly string[];
  /** Client name for the server's monitoring. @default DEFAULT_CONNECTION_NAME */
  name?: string;
  /** User name; requires `pass`. @default none */
  user?: string;
  /** Password; requires `user`. @default none */
  pass?: string;
  /** Authentication token; excludes user/pass, nkey and creds. @default none */
  token?: string;
  /** File holding an nkey seed (`SU…`). @default none */
  nkeySeedFile?: string;
  /** Decentralised-auth `.creds` file (JWT + seed). @default none */
  credsFile?: string;
  /** CA bundle to verify the server; setting any TLS file requires TLS. @default none (system CAs) */
  tlsCaFile?: string;
  /** Client certificate for mutual TLS; requires `tlsKeyFile`. @default none */
  tlsCertFile?: string;
  /** Key of the client certificate; requires `tlsCertFile`. @default none */
  tlsKeyFile?: string;
  /** Client ping period in ms. @default DEFAULT_PING_INTERVAL_MS (2000) */
  pingIntervalMs?: number;
  /** Unanswered pings before reconnecting. @default DEFAULT_MAX_PING_OUT (2) */
  maxPingOut?: number;
  /** Handshake timeout in ms. @default DEFAULT_CONNECT_TIMEOUT_MS (2000) */
  connectTimeoutMs?: number;
  /** Reconnect attempts per server, -1 for forever. @default DEFAULT_MAX_RECONNECT_ATTEMPTS (-1) */
  maxReconnectAttempts?: number;
  /** Wait between reconnect attempts in ms. @default DEFAULT_RECONNECT_TIME_WAIT_MS (250) */
  reconnectTimeWaitMs?: number;
  /** Random extra wait per reconnect attempt in ms. @default DEFAULT_RECONNECT_JITTER_MS (100) */
  reconnectJitterMs?: number;
  /**
   * Keep trying when no server answers the first connect (e.g. `up` starting NATS alongside),
   * instead of failing at once. With reconnect forever this waits forever. @default false
   */
  waitOnFirstConnect?: boolean;
  /** Inbox prefix for reply subjects, where permissions restrict `_INBOX.>`. @default '_INBOX' */
  inboxPrefix?: string;
}

/** How the connection authenticates, one way at most. */
export type CompiledAuth =
  | { kind: 'none' }
  | { kind: 'user'; user: string; pass: string }
  | { kind: 'token'; token: string }
  | { kind: 'nkey'; seedFile: string }
  | { kind: 'creds'; credsFile: string };

/** {@link ConnectionOptions} checked, with every default filled in. */
export interface CompiledConnectionOptions {
  servers: string[];
  name: string;
  auth: CompiledAuth;
  tls: { caFile?: string; certFile?: string; keyFile?: string } | undefined;
  pingIntervalMs: number;
  maxPingOut: number;
  connectTimeoutMs: number;
  maxReconnectAttempts: number;
  reconnectTimeWaitMs: number;
  reconnectJitterMs: number;
  waitOnFirstConnect: boolean;
  inboxPrefix: string | undefined;
}

function configError(message: string): StartupError {
  return new StartupError('config', `NATS connection option ${message}`);
}

function int(name: string, value: number | undefined, fallback: number, min: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) {
    throw configError(`${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  return v;
}

function given(value: string | undefined): value is string {
  return value !== undefined && value !== '';
}

function compileServers(servers: string | readonly string[] | undefined): string[] {
  const list =
    servers === undefined
      ? [...DEFAULT_SERVERS]
      : typeof servers === 'string'
        ? servers.split(',')
        : [...servers];
  const trimmed = list.map((s) => s.trim()).filter((s) => s !== '');
  if (trimmed.length === 0) {
    throw configError(`servers must name at least one server (${CONNECTION_ENV.servers})`);
  }
  for (const server of trimmed) {
    const scheme = /^([a-z]+):\/\//i.exec(server)?.[1]?.toLowerCase();
    if (scheme !== undefined && scheme !== 'nats' && scheme !== 'tls') {
      throw configError(
        `servers: '${redactUrl(server)}' must be nats://host:port, tls://host:port or host:port`,
      );
    }
  }
  return trimmed;
}

function compileAuth(opts: ConnectionOptions): CompiledAuth {
  const ways = [
    given(opts.user) || given(opts.pass) ? 'user/pass' : undefined,
    given(opts.token) ? 'token' : undefined,
    given(opts.nkeySeedFile) ? 'nkeySeedFile' : undefined,
    given(opts.credsFile) ? 'credsFile' : undefined,
  ].filter((w) => w !== undefined);
  if (ways.length > 1) {
    throw configError(`${ways.join(' and ')} contradict each other: give one way to authenticate`);
  }
  if (given(opts.user) !== given(opts.pass)) {
    throw configError(
      given(opts.user)
        ? `user is set without pass (${CONNECTION_ENV.pass})`
        : `pass is set without user (${CONNECTION_ENV.user})`,
    );
  }
  if (given(opts.user) && given(opts.pass)) return { kind: 'user', user: opts.user, pass: opts.pass };
  if (given(opts.token)) return { kind: 'token', token: opts.token };
  if (given(opts.nkeySeedFile)) return { kind: 'nkey', seedFile: opts.nkeySeedFile };
  if (given(opts.credsFile)) return { kind: 'creds', credsFile: opts.credsFile };
  return { kind: 'none' };
}

/** Fills defaults and rejects contradictions with a {@link StartupError} naming the option. */
export function compileConnectionOptions(opts: ConnectionOptions = {}): CompiledConnectionOptions {
  if (given(opts.tlsCertFile) !== given(opts.tlsKeyFile)) {
    throw configError(
      given(opts.tlsCertFile)
        ? 'tlsCertFile is set without tlsKeyFile'
        : 'tlsKeyFile is set without tlsCertFile',
    );
  }
  const anyTls = given(opts.tlsCaFile) || given(opts.tlsCertFile);
  const maxReconnectAttempts = int(
    'maxReconnectAttempts',
    opts.maxReconnectAttempts,
    DEFAULT_MAX_RECONNECT_ATTEMPTS,
    -1,
  );
  return {
    servers: compileServers(opts.servers),
    name: given(opts.name) ? opts.name : DEFAULT_CONNECTION_NAME,
    auth: compileAuth(opts),
    tls: anyTls
      ? { caFile: opts.tlsCaFile, certFile: opts.tlsCertFile, keyFile: opts.tlsKeyFile }
      : undefined,
    pingIntervalMs: int('pingIntervalMs', opts.pingIntervalMs, DEFAULT_PING_INTERVAL_MS, 1),
    maxPingOut: int('maxPingOut', opts.maxPingOut, DEFAULT_MAX_PING_OUT, 1),
    connectTimeoutMs: int('connectTimeoutMs', opts.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, 1),
    maxReconnectAttempts,
    reconnectTimeWaitMs: int(
      'reconnectTimeWaitMs',
      opts.reconnectTimeWaitMs,
      DEFAULT_RECONNECT_TIME_WAIT_MS,
      0,
    ),
    reconnectJitterMs: int('reconnectJitterMs', opts.reconnectJitterMs, DEFAULT_RECONNECT_JITTER_MS, 0),
    waitOnFirstConnect: opts.waitOnFirstConnect ?? false,
    inboxPrefix: given(opts.inboxPrefix) ? opts.inboxPrefix : undefined,
  };
}

function readSecretFile(option: keyof typeof CONNECTION_ENV, path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new StartupError(
      'config',
      `NATS connection option ${option} (${CONNECTION_ENV[option]}): cannot read ${path}: ${reason}`,
      {
        cause: err,
      },
    );
  }
}

/** Translates compiled options into nats.js options, reading key files (startup only: sync I/O). */
export function toNatsOptions(c: CompiledConnectionOptions): NodeConnectionOptions {
  const o: NodeConnectionOptions = {
    servers: c.servers,
    name: c.name,
    pingInterval: c.pingIntervalMs,
    maxPingOut: c.maxPingOut,
    timeout: c.connectTimeoutMs,
    reconnect: true,
    maxReconnectAttempts: c.maxReconnectAttempts,
    reconnectTimeWait: c.reconnectTimeWaitMs,
    reconnectJitter: c.reconnectJitterMs,
    reconnectJitterTLS: c.reconnectJitterMs,
    waitOnFirstConnect: c.waitOnFirstConnect,
  };
  if (c.inboxPrefix !== undefined) o.inboxPrefix = c.inboxPrefix;
  if (c.tls !== undefined) o.tls = c.tls;
  switch (c.auth.kind) {
    case 'user':
      o.user = c.auth.user;
      o.pass = c.auth.pass;
      break;
    case 'token':
      o.token = c.auth.token;
      break;
    case 'nkey': {
      const seed = new TextDecoder().decode(readSecretFile('nkeySeedFile', c.auth.seedFile)).trim();
      o.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
      break;
    }
    case 'creds':
      o.authenticator = credsAuthenticator(readSecretFile('credsFile', c.auth.credsFile));
      break;
    case 'none':
      break;
  }
  return o;
}

/** `nats://user:secret@host` → `nats://***@host`: server lists go into messages and logs. */
export function redactUrl(server: string): string {
  return server.replace(/^([a-z]+:\/\/)?[^@/]*@/i, (_m, scheme: string | undefined) => `${scheme ?? ''}***@`);
}

function authHint(auth: CompiledAuth): string {
  const env = CONNECTION_ENV;
  switch (auth.kind) {
    case 'none':
      return (
        `it requires credentials and none were given: set user and pass (${env.user}, ${env.pass}), ` +
        `token (${env.token}), nkeySeedFile (${env.nkeySeedFile}) or credsFile (${env.credsFile})`
      );
    case 'user':
      return `it refused the credentials of user '${auth.user}': check user and pass (${env.user}, ${env.pass}) against the server's authorization config`;
    case 'token':
      return `it refused the token: check token (${env.token}) against the server's authorization config`;
    case 'nkey':
      return `it refused the nkey in ${auth.seedFile}: check nkeySeedFile (${env.nkeySeedFile}) and the server's nkeys`;
    case 'creds':
      return `it refused the credentials in ${auth.credsFile}: check credsFile (${env.credsFile}) and the account's JWT`;
  }
}

/**
 * Turns a nats.js connection error into a switchyard error with a message a user can act on:
 * refused credentials → `unauthorized`, a permission violation → `forbidden`, anything else
 * (refused connection, timeout) → `unavailable`. Also for errors from `nc.closed()`.
 */
export function natsErrorToSwitchyard(err: unknown, c: CompiledConnectionOptions): SwitchyardError {
  if (err instanceof SwitchyardError) return err;
  const at = c.servers.map(redactUrl).join(', ');
  if (err instanceof UserAuthenticationExpiredError) {
    return new UnauthorizedError(
      `NATS server at ${at}: the credentials have expired; renew them and restart`,
      {
        cause: err,
      },
    );
  }
  if (err instanceof AuthorizationError) {
    return new UnauthorizedError(`NATS server at ${at} refused the connection: ${authHint(c.auth)}`, {
      cause: err,
    });
  }
  if (err instanceof PermissionViolationError) {
    return new ForbiddenError(
      `NATS denied ${err.operation} on '${err.subject}': the account lacks permission for it`,
      { cause: err },
    );
  }
  const reason = err instanceof Error ? err.message : String(err);
  return new UnavailableError(
    `cannot connect to NATS at ${at}: ${reason}; is nats-server running there? (servers, ${CONNECTION_ENV.servers})`,
    { cause: err },
  );
}

/**
 * Connects with deliberate timings. Rejects with {@link UnauthorizedError} when the server
 * refuses the credentials, {@link UnavailableError} when no server answers, and
 * {@link StartupError} for contradictory options or unreadable key files.
 */
export async function connectNats(opts: ConnectionOptions = {}): Promise<NatsConnection> {
  const compiled = compileConnectionOptions(opts);
  const natsOptions = toNatsOptions(compiled);
  try {
    return await connect(natsOptions);
  } catch (err) {
    throw natsErrorToSwitchyard(err, compiled);
  }
}
