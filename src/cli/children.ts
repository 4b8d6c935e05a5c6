/**
 * One actor process started by `up`: `child_process.fork` of the CLI entry point through tsx,
 * with an IPC channel for its ready/failed report. Children run in their own process group, so
 * a Ctrl-C in the terminal reaches only `up`, which stops them in order (the bridge, then routers,
 * so that in-flight requests still find their replicas). Each is started with a parent-death
 * signal (parent-death.ts), so that it cannot outlive an `up` that was killed outright.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ActorRole } from './actor.ts';
import { decodeChildMessage } from './ipc.ts';
import { withParentDeathSignal } from './parent-death.ts';

/** The CLI entry point each child runs. */
const MAIN_MODULE = fileURLToPath(new URL('./main.ts', import.meta.url));
/** tsx's loader, resolved from this package so that `up` works from any working directory. */
const TSX_LOADER = import.meta.resolve('tsx');

/** What to start. */
export interface ChildSpec {
  readonly role: ActorRole;
  readonly id: string;
  /** Arguments after the subcommand. */
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** `cpu` or `cuda:N`, for the summary. */
  readonly device?: string;
  readonly metricsPort?: number;
}

/** How a process ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** `exit 1`, `signal SIGKILL`. */
export function describeExit(exit: Exit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit ${String(exit.code)}`;
}

/** One run of a child actor; supervisor.ts starts another when it ends unasked. */
export class ActorProcess {
  readonly spec: ChildSpec;
  /** Resolves with the child's description once it reports ready; rejects with why it did not. */
  readonly ready: Promise<string | undefined>;
  readonly exited: Promise<Exit>;
  /** What the child said it serves (e.g. `tiny-gpt2@1, cpu`), once ready. */
  detail: string | undefined;
  /** Where the child serves HTTP (the bridge), once ready. */
  url: string | undefined;
  private readonly child: ChildProcess;

  private constructor(spec: ChildSpec, child: ChildProcess) {
    this.spec = spec;
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      // A process that could not be spawned at all never emits 'exit'.
      child.once('error', () => {
        if (child.pid === undefined) resolve({ code: null, signal: null });
      });
    });
    this.ready = new Promise((resolve, reject) => {
      let failure: string | undefined;
      child.on('message', (raw) => {
        const message = decodeChildMessage(raw);
        if (message?.type === 'ready') {
          this.detail = message.detail;
          this.url = message.url;
          resolve(message.detail);
        }
        if (message?.type === 'failed') failure = message.message;
      });
      child.once('error', (err) => reject(err));
      void this.exited.then((exit) =>
        reject(new Error(failure ?? `exited (${describeExit(exit)}) before it was ready`)),
      );
    });
    this.ready.catch(() => {}); // observed by up; never an unhandled rejection
  }

  /** Forks `switchyard <role> <args>`. */
  static start(spec: ChildSpec): ActorProcess {
    // fork runs `execPath ...execArgv MAIN_MODULE args`: setpriv execs node in the same process.
    const node = withParentDeathSignal(process.execPath, ['--import', TSX_LOADER]);
    const child = fork(MAIN_MODULE, [spec.role, ...spec.args], {
      execPath: node.command,
      execArgv: [...node.args],
      env: spec.env,
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new ActorProcess(spec, child);
  }

  /** The process id (undefined when it could not be spawned). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM (the actor drains), then SIGKILL after `timeoutMs`. */
  async stop(timeoutMs: number): Promise<Exit> {
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      const exit = await this.exited;
      clearTimeout(timer);
      return exit;
    }
    return this.exited;
  }

  /** SIGKILL now (a second Ctrl-C, or `up` itself exiting abnormally). */
  killNow(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}
