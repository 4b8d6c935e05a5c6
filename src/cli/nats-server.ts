/**
 * The nats-server that `up` starts when no `--nats` is given: loopback only, on a free port,
 * config, log and JetStream store in a temp dir that is removed on a clean stop. It runs in its
 * own process group so that a Ctrl-C in the terminal reaches only `up`, which then drains the
 * actors while NATS is still there and stops NATS last. It gets a parent-death signal
 * (parent-death.ts): nats-server cannot watch its parent, and an `up` killed outright runs no
 * exit hook.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { authorizationBlock, type NatsUser } from '../cluster/permissions.ts';
import { StartupError } from '../errors/errors.ts';
import { withParentDeathSignal } from './parent-death.ts';

/** Where Debian and common installs put the binary (Debian's /usr/sbin is often not on a user's PATH). */
const BINARY_CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];
/** Environment variable that names the binary explicitly (the test helpers and setup script honour it too). */
export const NATS_SERVER_BIN_ENV = 'NATS_SERVER_BIN';
/** How long the server may take to accept connections. */
const READY_TIMEOUT_MS = 10_000;
/** How long stop() waits for a graceful exit before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;
/** Free-port races (another process binds it first) are retried this often. */
const PORT_ATTEMPTS = 3;
const HOST = '127.0.0.1';

/**
 * How clients must authenticate to the local server: nkey users with per-role permissions
 * (`up`'s default), or, with `up --insecure`, nothing or one shared user or token.
 */
export type LocalAuth =
  | { kind: 'none' }
  | { kind: 'user'; user: string; pass: string }
  | { kind: 'token'; token: string }
  | { kind: 'nkeys'; users: readonly NatsUser[] };

/** The nats-server binary: $NATS_SERVER_BIN, then PATH, then the usual install paths; undefined if none. */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env[NATS_SERVER_BIN_ENV];
  if (fromEnv !== undefined && fromEnv !== '' && existsSync(fromEnv)) return fromEnv;
  const onPath = (env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '')
    .map((dir) => join(dir, 'nats-server'));
  return [...onPath, ...BINARY_CANDIDATES].find((p) => existsSync(p));
}

/** A port on 127.0.0.1 that was free a moment ago (also for the actors' metrics endpoints). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Resolves true when something on host:port answers with a NATS INFO line (the host is other
 * than loopback only for servers in network namespaces, as the chaos suite runs them).
 */
export function probeNats(port: number, host: string = HOST): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (data: Buffer) => done(data.toString('utf8').startsWith('INFO ')));
  });
}

function configText(dir: string, auth: LocalAuth): string {
  const q = (s: string): string => JSON.stringify(s);
  // JetStream is on for the continual-learning collector, which keeps its records there.
  const lines = [`jetstream { store_dir: ${q(join(dir, 'jetstream'))} }`];
  if (auth.kind === 'user') lines.push(`authorization { user: ${q(auth.user)}, password: ${q(auth.pass)} }`);
  if (auth.kind === 'token') lines.push(`authorization { token: ${q(auth.token)} }`);
  if (auth.kind === 'nkeys') lines.push(authorizationBlock(auth.users));
  return `${lines.join('\n')}\n`;
}

/** A running local nats-server. */
export interface LocalNatsServer {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** Temp dir with config, log (`nats.log`) and store. */
  readonly dir: string;
  readonly logFile: string;
  /** Resolves when the process exits, for whatever reason. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after a grace period; removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Synchronous last resort for exit hooks. */
  killNow(): void;
}

async function launch(bin: string, dir: string): Promise<{ child: ChildProcess; port: number } | string> {
  const port = await freePort();
  const logFile = join(dir, 'nats.log');
  const args = ['-c', join(dir, 'nats.conf'), '-a', HOST, '-p', String(port), '-l', logFile];
  const command = withParentDeathSignal(bin, args);
  const child = spawn(command.command, command.args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  // Detached, it would outlive a `up` that exits on an error: kill it when this process exits
  // (the parent-death signal covers the deaths that run no exit hook).
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  let exited = false;
  child.once('exit', () => (exited = true));
  child.once('error', (err) => {
    exited = true;
    stderr += err.message;
  });
  const started = Date.now();
  while (Date.now() - started < READY_TIMEOUT_MS) {
    if (exited) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-1000) : '';
      return (stderr.trim() || log.trim() || 'no output').split('\n').slice(-3).join(' ');
    }
    if (await probeNats(port)) return { child, port };
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  return `it did not accept connections on ${HOST}:${port} within ${READY_TIMEOUT_MS} ms`;
}

/** Starts a local nats-server; throws a {@link StartupError} that says how to install it when missing. */
export async function startLocalNatsServer(auth: LocalAuth = { kind: 'none' }): Promise<LocalNatsServer> {
  const bin = findNatsServer();
  if (bin === undefined) {
    throw new StartupError(
      'dependency',
      'nats-server is not installed: install it with `apt-get install nats-server` (as root), ' +
        `set ${NATS_SERVER_BIN_ENV} to its path, or give --nats URL of a running server`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-up-'));
  writeFileSync(join(dir, 'nats.conf'), configText(dir, auth), { mode: 0o600 });
  let why = '';
  for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt++) {
    const launched = await launch(bin, dir);
    if (typeof launched === 'string') {
      why = launched;
      continue;
    }
    return running(launched.child, launched.port, dir);
  }
  rmSync(dir, { recursive: true, force: true });
  throw new StartupError('dependency', `nats-server (${bin}) failed to start: ${why}`);
}

function running(child: ChildProcess, port: number, dir: string): LocalNatsServer {
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let stopping: Promise<void> | undefined;
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  return {
    url: `nats://${HOST}:${port}`,
    dir,
    logFile: join(dir, 'nats.log'),
    exited,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
          await exited;
          clearTimeout(timer);
        }
        cleanup();
      })();
      return stopping;
    },
    killNow() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      cleanup();
    },
  };
}
