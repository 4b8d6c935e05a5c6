/**
 * The runner's side of a load client: forks chaos/load-entry.ts as its own process (so that
 * the load does not share an event loop with the runner or the cluster), hands it a plan, and
 * collects the operations it recorded.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Operation } from './history/types.ts';
import type { FromLoad, LoadPlan, ToLoad } from './load-protocol.ts';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'load-entry.ts');

/** One running load client process. */
export class LoadClient {
  /** The operations, once the process reported them. */
  readonly done: Promise<Operation[]>;
  private readonly streamingWaiters: Array<() => void> = [];
  private streams = 0;

  private constructor(private readonly child: ChildProcess) {
    this.done = new Promise((resolve, reject) => {
      child.on('message', (msg: FromLoad) => {
        if (msg.type === 'streaming') {
          this.streams++;
          for (const w of this.streamingWaiters.splice(0)) w();
        } else if (msg.type === 'done') resolve(msg.operations);
        else reject(new Error(`load client failed: ${msg.message}`));
      });
      child.on('exit', (code) => reject(new Error(`load client exited with ${code} before reporting`)));
    });
    // Awaited by the runner after the scenario: an early exit must fail the scenario, not crash the run.
    this.done.catch(() => undefined);
  }

  /** Forks a load client and starts its plan. */
  static start(plan: LoadPlan): LoadClient {
    const child = fork(ENTRY, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const client = new LoadClient(child);
    client.post({ type: 'start', plan });
    return client;
  }

  /** How many streams delivered a first chunk so far. */
  get streaming(): number {
    return this.streams;
  }

  /** Resolves when a stream delivers its first chunk after now (a fault then lands mid-stream). */
  nextStream(): Promise<void> {
    return new Promise((resolve) => this.streamingWaiters.push(resolve));
  }

  /** Tells the client to stop sending; requests still open are recorded unknown. */
  stop(): void {
    this.post({ type: 'stop' });
  }

  /** Last resort for the runner's cleanup. */
  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }

  private post(msg: ToLoad): void {
    if (this.child.connected) this.child.send(msg);
  }
}
