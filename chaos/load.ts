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

/** The load ended before a stream the scenario waited for started: its fault has nothing to hit. */
export class LoadEndedError extends Error {
  constructor() {
    super(
      'the load ended before another stream started: the scenario outlasted its load (raise --duration or --load)',
    );
    this.name = 'LoadEndedError';
  }
}

/** One running load client process. */
export class LoadClient {
  /** The operations, once the process reported them. */
  readonly done: Promise<Operation[]>;
  private readonly streamingWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private ended = false;
  private streams = 0;

  private constructor(private readonly child: ChildProcess) {
    this.done = new Promise((resolve, reject) => {
      child.on('message', (msg: FromLoad) => {
        if (msg.type === 'streaming') {
          this.streams++;
          for (const w of this.streamingWaiters.splice(0)) w.resolve();
        } else if (msg.type === 'done') resolve(msg.operations);
        else reject(new Error(`load client failed: ${msg.message}`));
      });
      // 'close', not 'exit': a large last message may still be in the IPC pipe at exit.
      child.on('close', (code) => reject(new Error(`load client exited with ${code} before reporting`)));
    });
    // The runner awaits `done` only after the scenario; an early failure must not crash it first.
    // Once the load is over no stream will start: a scenario still waiting for one must hear so.
    const end = (): void => {
      this.ended = true;
      for (const w of this.streamingWaiters.splice(0)) w.reject(new LoadEndedError());
    };
    this.done.then(end, end);
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

  /**
   * Resolves when a stream delivers its first chunk after now (a fault then lands mid-stream);
   * rejects with LoadEndedError once the load is over.
   */
  nextStream(): Promise<void> {
    if (this.ended) return Promise.reject(new LoadEndedError());
    return new Promise((resolve, reject) => this.streamingWaiters.push({ resolve, reject }));
  }

  /** Whether the load is over (every request ended or the client stopped). */
  get over(): boolean {
    return this.ended;
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
