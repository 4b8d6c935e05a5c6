/**
 * The runner's side of a flood process (chaos/flood-entry.ts): forks it, sets it up once, and
 * runs its phases one after another, each answered by the phase's counts.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FloodPhase, FloodSetup, FloodStats, FromFlood, ToFlood } from './flood-protocol.ts';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'flood-entry.ts');

/** One running flood process. */
export class FloodClient {
  private waiter: { resolve: (m: FromFlood) => void; reject: (e: Error) => void } | undefined;
  private exitError: Error | undefined;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (msg: FromFlood) => {
      const w = this.waiter;
      this.waiter = undefined;
      w?.resolve(msg);
    });
    child.on('exit', (code, signal) => {
      this.exitError = new Error(`the flood process exited (${code ?? signal}) before answering`);
      this.waiter?.reject(this.exitError);
      this.waiter = undefined;
    });
  }

  /** Forks a flood process and waits until it is connected. */
  static async start(setup: FloodSetup): Promise<FloodClient> {
    const child = fork(ENTRY, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const flood = new FloodClient(child);
    await flood.ask({ type: 'setup', setup }, 'ready');
    return flood;
  }

  /** Runs one phase; resolves with its counts once every request it sent was answered or hung. */
  async phase(phase: FloodPhase): Promise<FloodStats> {
    const msg = await this.ask({ type: 'phase', phase }, 'stats');
    if (msg.type !== 'stats') throw new Error(`the flood answered ${msg.type} to a phase`);
    return msg.stats;
  }

  /** Ends the process (its open sockets and NATS connection close with it). */
  stop(): void {
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2_000);
    timer.unref();
  }

  private ask(msg: ToFlood, expected: FromFlood['type']): Promise<FromFlood> {
    if (this.exitError !== undefined) return Promise.reject(this.exitError);
    return new Promise<FromFlood>((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.child.send(msg);
    }).then((answer) => {
      if (answer.type === 'failed') throw new Error(`the flood process failed: ${answer.message}`);
      if (answer.type !== expected)
        throw new Error(`the flood answered ${answer.type}, expected ${expected}`);
      return answer;
    });
  }
}
