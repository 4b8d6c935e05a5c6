/**
 * The chaos suite's actor launcher: routers, replicas and bridges as real child processes,
 * started through the CLI as a user would start them, so that a scenario can SIGKILL, SIGSTOP
 * and SIGCONT them. It lives in chaos/ (the suite ships apart from the tests);
 * test/helpers/cluster.ts re-exports it for the integration tests. Every process started here is
 * killed when the starting process exits.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { NatsConnection } from '@nats-io/nats-core';
import { replicaFaultSubject } from '../src/cluster/subjects.ts';
import type { FaultCommand } from '../src/replica/faults.ts';
import { CHAOS_MODEL_DIR, SWITCHYARD_BIN } from './paths.ts';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** How long a replica may take to answer a fault command. */
const FAULT_REPLY_TIMEOUT_MS = 5_000;

/** How long an actor may take to start (model load and warm-up on a busy 2-core machine). */
export const ACTOR_START_TIMEOUT_MS = 60_000;

/** One actor process: a router, replica or bridge started through the CLI. */
export class ActorProcess {
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** Where a bridge serves HTTP, from its ready message. */
  url: string | undefined;
  private output = '';

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
    const extra =
      role === 'replica'
        ? ['--model', CHAOS_MODEL_DIR, '--threads', '1', '--allow-fault-injection']
        : role === 'bridge'
          ? ['--host', '127.0.0.1', '--port', '0']
          : [];
    const child = fork(SWITCHYARD_BIN, [role, ...base, ...extra, ...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, ...env },
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
