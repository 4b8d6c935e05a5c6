/**
 * Starts a real nats-server for a test file, like nats.js `nst/src/launcher.ts`: on a free
 * port on 127.0.0.1 only, with its config, log and JetStream store in a temp dir, and with
 * restart (same port, same store) and signal helpers for failure tests. Servers are always
 * cleaned up — by stop(), and by exit/signal hooks when a test dies first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNatsServer, freePort, probeNats } from '../../src/cli/nats-server.ts';

/** Where Debian and common installs put the binary (Debian's is not on a user's PATH). */
/** How long a server may take to accept connections before start() gives up. */
const READY_TIMEOUT_MS = 10_000;
/** How long stop() waits for a graceful exit before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;
const HOST = '127.0.0.1';

/** A user of the server's authorization block. */
export interface NatsServerUser {
  user: string;
  password: string;
}

/** What to run. */
export interface NatsServerOptions {
  /** Enable JetStream with its store in the temp dir (kept across restart()). @default false */
  jetstream?: boolean;
  /** Require one of these users. Excludes `token`. @default none */
  users?: NatsServerUser[];
  /** Require this token. Excludes `users`. @default none */
  token?: string;
  /** Extra lines appended to the config file. @default none */
  extraConfig?: string;
  /** Log protocol traffic to the log file (-DV). @default false */
  debug?: boolean;
}

const running = new Set<NatsServer>();

function cleanupAll(): void {
  for (const server of running) server.killNow();
}

process.once('exit', cleanupAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    cleanupAll();
    process.kill(process.pid, sig); // once-listener is gone: the default action ends the process
  });
}

/** The nats-server binary (the same search `switchyard up` does), or an error saying how to install it. */
export function findNatsServerBinary(): string {
  const found = findNatsServer();
  if (found === undefined) {
    throw new Error(
      'nats-server is not installed; install it with `sudo apt-get install nats-server` ' +
        '(or run `node scripts/setup.mjs`), or set NATS_SERVER_BIN to its path',
    );
  }
  return found;
}

export { freePort };

function quote(value: string): string {
  return JSON.stringify(value);
}

function configText(opts: NatsServerOptions, dir: string): string {
  if (opts.users !== undefined && opts.token !== undefined) throw new Error('give users or token, not both');
  const lines: string[] = [];
  if (opts.jetstream) lines.push(`jetstream { store_dir: ${quote(join(dir, 'jetstream'))} }`);
  if (opts.users !== undefined) {
    const users = opts.users.map((u) => `{ user: ${quote(u.user)}, password: ${quote(u.password)} }`);
    lines.push(`authorization { users: [ ${users.join(', ')} ] }`);
  }
  if (opts.token !== undefined) lines.push(`authorization { token: ${quote(opts.token)} }`);
  if (opts.extraConfig !== undefined) lines.push(opts.extraConfig);
  return `${lines.join('\n')}\n`;
}

export class NatsServer {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** The temp dir holding config, log and JetStream store. */
  readonly dir: string;
  private readonly bin: string;
  private readonly debug: boolean;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(bin: string, port: number, dir: string, debug: boolean) {
    this.bin = bin;
    this.port = port;
    this.dir = dir;
    this.debug = debug;
    this.url = `nats://${HOST}:${port}`;
  }

  /** Starts a server and waits until it accepts connections. */
  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    const bin = findNatsServerBinary();
    const dir = mkdtempSync(join(tmpdir(), 'sy-nats-'));
    const server = new NatsServer(bin, await freePort(), dir, opts.debug ?? false);
    running.add(server);
    try {
      writeFileSync(join(dir, 'nats.conf'), configText(opts, dir));
      await server.launch();
      return server;
    } catch (err) {
      await server.stop();
      throw err;
    }
  }

  /** The server's log so far (for assertion messages). */
  log(): string {
    const path = join(this.dir, 'nats.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  /** True while the process runs. */
  get isRunning(): boolean {
    return this.child !== undefined;
  }

  private async launch(): Promise<void> {
    const args = [
      '-c',
      join(this.dir, 'nats.conf'),
      '-a',
      HOST,
      '-p',
      String(this.port),
      '-l',
      join(this.dir, 'nats.log'),
    ];
    if (this.debug) args.push('-DV');
    const child = spawn(this.bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    this.child = child;
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        if (this.child === child) this.child = undefined;
        resolve();
      }),
    );
    const started = Date.now();
    while (Date.now() - started < READY_TIMEOUT_MS) {
      if (this.child !== child) {
        throw new Error(`nats-server exited at start: ${stderr.trim() || this.log().slice(-2000)}`);
      }
      if (await probeNats(this.port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`nats-server did not accept connections on ${this.url} within ${READY_TIMEOUT_MS} ms`);
  }

  /** Sends a signal, e.g. SIGSTOP / SIGCONT to freeze and thaw the server. */
  signal(sig: NodeJS.Signals): void {
    if (this.child === undefined) throw new Error('nats-server is not running');
    this.child.kill(sig);
  }

  /** Stops the process (graceful, then SIGKILL); keeps the temp dir for restart(). */
  private async halt(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill('SIGTERM');
    child.kill('SIGCONT'); // a SIGSTOPped server handles SIGTERM only once continued
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  /**
   * Stops the server and starts it again on the same port with the same config and store,
   * after `downMs` of downtime (to let clients notice the outage).
   */
  async restart(downMs = 0): Promise<void> {
    await this.halt();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.launch();
  }

  /** Stops the server for good and removes its temp dir. Safe to call more than once. */
  async stop(): Promise<void> {
    await this.halt();
    running.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous last-resort cleanup for exit hooks. */
  killNow(): void {
    this.child?.kill('SIGKILL');
    running.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
