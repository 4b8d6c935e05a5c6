/**
 * The chaos suite's actor launcher: routers, replicas and bridges as real child processes,
 * started through the CLI as a user would start them, so that a scenario can SIGKILL, SIGSTOP
 * and SIGCONT them. It lives in chaos/ (the suite ships apart from the tests);
 * test/helpers/cluster.ts re-exports it for the integration tests. Every process started here is
 * killed when the starting process exits.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import type { NatsConnection } from '@nats-io/nats-core';
import { replicaFaultSubject } from '../src/cluster/subjects.ts';
import type { FaultCommand } from '../src/replica/faults.ts';
import { CHAOS_MODEL_DIR, MEMORY_PROBE, SWITCHYARD_BIN } from './paths.ts';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** How long a replica may take to answer a fault command. */
const FAULT_REPLY_TIMEOUT_MS = 5_000;

/** How long an actor may take to start (model load and warm-up on a busy 2-core machine). */
export const ACTOR_START_TIMEOUT_MS = 60_000;

/** How long the memory probe may take to answer (a heap snapshot of a busy bridge takes seconds). */
const MEMORY_PROBE_TIMEOUT_MS = 60_000;

/**
 * Extra node flags for every actor the suite starts (e.g. `--heapsnapshot-signal=SIGUSR2`), from
 * the environment, on top of the memory probe's preload.
 */
export const ACTOR_NODE_OPTIONS_ENV = 'CHAOS_ACTOR_NODE_OPTIONS';

/** process.memoryUsage() in KiB, as the memory probe reports it. */
export interface MemoryUsageKiB {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** The memory probe's answer (chaos/memory-probe.mjs). */
export interface MemoryReport {
  before: MemoryUsageKiB;
  /** After a full GC when one was asked for, else `before`. */
  after: MemoryUsageKiB;
  /** V8's heap spaces: reserved and used, KiB. */
  spaces: Record<string, { sizeKiB: number; usedKiB: number }>;
  /** Where the heap snapshot was written, when one was asked for. */
  snapshot?: string;
  error?: string;
}

/** NODE_OPTIONS for an actor: the memory probe preloaded, and the flags the environment adds. */
function actorNodeOptions(env: Record<string, string>): string {
  const own = `--import=${pathToFileURL(MEMORY_PROBE).href}`;
  return [env.NODE_OPTIONS ?? process.env.NODE_OPTIONS, own, process.env[ACTOR_NODE_OPTIONS_ENV]]
    .filter((s) => s !== undefined && s !== '')
    .join(' ');
}

/** One actor process: a router, replica or bridge started through the CLI. */
export class ActorProcess {
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** Where a bridge serves HTTP, from its ready message. */
  url: string | undefined;
  private output = '';
  private probes = 0;

  private constructor(
    readonly role: string,
    readonly id: string,
    readonly child: ChildProcess,
  ) {
    live.add(child);
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        live.delete(child);
        resolve(code);
      }),
    );
  }

  /** Starts `switchyard <role> --id <id> --nats <url> ...args` and waits until it reports ready. */
  static async start(
    role: 'replica' | 'router' | 'bridge' | 'collector',
    id: string,
    natsUrl: string,
    args: string[] = [],
    env: Record<string, string> = {},
  ): Promise<ActorProcess> {
    const base = ['--id', id, '--nats', natsUrl, '--log-level', 'warn'];
    // A replica serves the bundled model unless `args` name another (a registry URL).
    const model = args.includes('--model') ? [] : ['--model', CHAOS_MODEL_DIR];
    const extra =
      role === 'replica'
        ? [...model, '--threads', '1', '--allow-fault-injection']
        : role === 'bridge'
          ? ['--host', '127.0.0.1', '--port', '0']
          : [];
    const child = fork(SWITCHYARD_BIN, [role, ...base, ...extra, ...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, ...env, NODE_OPTIONS: actorNodeOptions(env) },
    });
    const actor = new ActorProcess(role, id, child);
    await actor.ready();
    return actor;
  }

  /** Everything the process printed (for failure messages). */
  get log(): string {
    return this.output;
  }

  private ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(
          new Error(`${this.role} ${this.id} not ready within ${ACTOR_START_TIMEOUT_MS} ms:\n${this.output}`),
        );
      }, ACTOR_START_TIMEOUT_MS);
      this.child.on('message', (msg: { type?: string; message?: string; url?: string }) => {
        if (msg.type === 'ready') {
          clearTimeout(timer);
          this.url = msg.url;
          resolve();
        } else if (msg.type === 'failed') {
          clearTimeout(timer);
          reject(new Error(`${this.role} ${this.id} failed to start: ${msg.message}`));
        }
      });
      this.child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${this.role} ${this.id} exited with ${code} before ready:\n${this.output}`));
      });
    });
  }

  /**
   * The process's memory from the memory probe preloaded into it: process.memoryUsage() before
   * and (with `gc`) after a full garbage collection, V8's heap spaces, and a heap snapshot
   * written to `snapshot` when given.
   */
  memory(options: { gc?: boolean; snapshot?: string } = {}): Promise<MemoryReport> {
    const id = ++this.probes;
    return new Promise((resolve, reject) => {
      const onMessage = (msg: { type?: string; id?: number } & Partial<MemoryReport>): void => {
        if (msg.type !== 'chaos-memory' || msg.id !== id) return;
        done();
        resolve(msg as MemoryReport);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.role} ${this.id}: no memory report within ${MEMORY_PROBE_TIMEOUT_MS} ms`));
      }, MEMORY_PROBE_TIMEOUT_MS);
      const done = (): void => {
        clearTimeout(timer);
        this.child.off('message', onMessage);
      };
      this.child.on('message', onMessage);
      this.child.send(
        { type: 'chaos-memory', id, gc: options.gc === true, snapshot: options.snapshot },
        (err) => {
          if (err === null) return;
          done();
          reject(err);
        },
      );
    });
  }

  /** Sends `sig` as is (SIGSTOP, SIGCONT, SIGKILL without waiting). */
  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (drain) and wait for the exit code. */
  async terminate(): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.child.kill('SIGCONT');
    this.child.kill('SIGTERM');
    return this.exited;
  }
}

/** Injects a fault into a replica started with fault injection enabled. */
export async function injectFault(nc: NatsConnection, replicaId: string, fault: FaultCommand): Promise<void> {
  const reply = await nc.request(replicaFaultSubject(replicaId), JSON.stringify(fault), {
    timeout: FAULT_REPLY_TIMEOUT_MS,
  });
  const answer = JSON.parse(reply.string()) as { ok: boolean; error?: string };
  if (!answer.ok) throw new Error(`fault injection refused: ${answer.error}`);
}

/** Stops every actor given (SIGKILL), ignoring ones already gone. */
export async function killAll(actors: Array<ActorProcess | undefined>): Promise<void> {
  await Promise.all(actors.map((a) => (a ? a.kill() : Promise.resolve())));
}
