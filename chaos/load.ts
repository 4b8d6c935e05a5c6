/**
 * The runner's side of the load: each load client is chaos/load-entry.ts forked as its own
 * process (so that the load does not share an event loop with the runner or the cluster), handed
 * a plan; `LoadClient` is the several of them (NATS clients on different nodes, an HTTP client per
 * bridge) behind the one API scenarios use, with their operations merged.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Operation, Via } from './history/types.ts';
import type { FromLoad, LoadPlan, ToLoad } from './load-protocol.ts';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'load-entry.ts');

/** Which streams a scenario waits for (all of them when absent). */
export interface StreamFilter {
  /** Only streams of these load clients (LoadPlan.client). */
  clients?: readonly string[];
  /** Only streams through these doors. */
  vias?: readonly Via[];
}

/** A stream that delivered its first chunk. */
interface StreamStart {
  id: string;
  client: string;
  via: Via;
}

function matches(filter: StreamFilter | undefined, s: StreamStart): boolean {
  return (
    (filter?.clients === undefined || filter.clients.includes(s.client)) &&
    (filter?.vias === undefined || filter.vias.includes(s.via))
  );
}

/** One running load client process. */
export class LoadProcess {
  /** The operations, once the process reported them. */
  readonly done: Promise<Operation[]>;
  /** Called on each stream's first chunk. */
  onStream: (s: StreamStart) => void = () => {};

  private constructor(
    readonly plan: LoadPlan,
    private readonly child: ChildProcess,
  ) {
    this.done = new Promise((resolve, reject) => {
      child.on('message', (msg: FromLoad) => {
        if (msg.type === 'streaming') this.onStream({ id: msg.id, client: msg.client, via: msg.via });
        else if (msg.type === 'done') resolve(msg.operations);
        else reject(new Error(`load client failed: ${msg.message}`));
      });
      // 'close', not 'exit': it comes after the IPC channel closed, so after every message was read.
      child.on('close', (code) => reject(new Error(`load client exited with ${code} before reporting`)));
    });
    // Awaited by the runner after the scenario: an early exit must fail the scenario, not crash the run.
    this.done.catch(() => undefined);
  }

  /** Forks a load client and starts its plan. */
  static start(plan: LoadPlan): LoadProcess {
    const child = fork(ENTRY, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const client = new LoadProcess(plan, child);
    client.post({ type: 'start', plan });
    return client;
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

/** How many started streams LoadClient remembers for recentIds(). */
const RECENT_STREAMS = 256;

/** The load ended before a stream the scenario waited for started: its fault has nothing to hit. */
export class LoadEndedError extends Error {
  constructor() {
    super(
      'the load ended before another stream started: the scenario outlasted its load (raise --duration or --load)',
    );
    this.name = 'LoadEndedError';
  }
}

/** Every load client of a scenario, as one: what `ScenarioContext.load` is. */
export class LoadClient {
  /** Every client's operations, merged in invocation order, once all of them reported. */
  readonly done: Promise<Operation[]>;
  private readonly waiters: Array<{
    filter?: StreamFilter;
    resolve: () => void;
    reject: (err: Error) => void;
  }> = [];
  private streams = 0;
  private ended = false;
  /** Ids of the streams started last, newest last (hostile traffic targets live requests). */
  private readonly started: StreamStart[] = [];

  private constructor(readonly processes: readonly LoadProcess[]) {
    for (const p of processes) {
      p.onStream = (s) => {
        this.streams++;
        this.started.push(s);
        if (this.started.length > RECENT_STREAMS) this.started.shift();
        for (const w of this.waiters.splice(0)) {
          if (matches(w.filter, s)) w.resolve();
          else this.waiters.push(w);
        }
      };
    }
    this.done = Promise.all(processes.map((p) => p.done)).then((all) =>
      all.flat().sort((a, b) => a.invokedAt - b.invokedAt),
    );
    // The runner awaits `done` only after the scenario; an early failure must not crash it first.
    // Once the load is over no stream will start: a scenario still waiting for one must hear so.
    const end = (): void => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w.reject(new LoadEndedError());
    };
    this.done.then(end, end);
  }

  /** Forks one process per plan (each plan's `client` names it in the history); one plan is one client. */
  static start(plan: LoadPlan | readonly LoadPlan[]): LoadClient {
    const plans: readonly LoadPlan[] = 'items' in plan ? [plan] : plan;
    if (plans.length === 0) throw new Error('a load needs at least one load client plan');
    return new LoadClient(plans.map((plan) => LoadProcess.start(plan)));
  }

  /** The plans, e.g. to find the HTTP client of one bridge. */
  get plans(): LoadPlan[] {
    return this.processes.map((p) => p.plan);
  }

  /** How many streams delivered a first chunk so far, over every client. */
  get streaming(): number {
    return this.streams;
  }

  /**
   * Resolves when a stream (of `filter`'s clients and doors, or any) delivers its first chunk
   * after now: a fault then lands mid-stream. Rejects with LoadEndedError once the load is over.
   */
  nextStream(filter?: StreamFilter): Promise<void> {
    if (this.ended) return Promise.reject(new LoadEndedError());
    return new Promise((resolve, reject) =>
      this.waiters.push({ ...(filter ? { filter } : {}), resolve, reject }),
    );
  }

  /** The ids of the last `n` streams (of `filter`'s clients and doors, or any) that started, newest last. */
  recentIds(n: number, filter?: StreamFilter): string[] {
    return this.started
      .filter((s) => matches(filter, s))
      .slice(-n)
      .map((s) => s.id);
  }

  /** Whether the load is over (every client reported or failed). */
  get over(): boolean {
    return this.ended;
  }

  /** Tells every client to stop sending; requests still open are recorded unknown. */
  stop(): void {
    for (const p of this.processes) p.stop();
  }

  /** Last resort for the runner's cleanup. */
  kill(): void {
    for (const p of this.processes) p.kill();
  }
}
