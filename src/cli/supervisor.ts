/**
 * Keeps one child of `up` running. After the child was first ready, every exit that `stop()`
 * did not ask for (a crash, exit 1, even exit 0, a SIGTERM or SIGKILL from outside) starts it
 * again with the same spec (same id, ports and arguments) after a capped exponential backoff; a
 * restart that fails too (the child exits before it is ready, or cannot be spawned) is retried
 * the same way, for as long as `up` runs. A child that stayed up for
 * {@link RESTART_BACKOFF_RESET_MS} starts over at the first delay. The first start is not
 * retried: a child that cannot start at all (a missing model, a taken port) is a configuration
 * problem that `up` reports, not something a retry fixes.
 */
import type { Exit } from './children.ts';
import { describeExit } from './children.ts';

/** Delay before the first restart after a child ran (and the base of the backoff). */
export const DEFAULT_RESTART_BACKOFF_MS = 500;
/** The longest delay between two restarts of one child: a child failing for good is still retried, slowly. */
export const MAX_RESTART_BACKOFF_MS = 30_000;
/** A child that stayed ready this long counts as healthy again: its next restart waits the first delay. */
export const RESTART_BACKOFF_RESET_MS = 60_000;

/** One run of a child, as the supervisor needs it ({@link ActorProcess} is one). */
export interface SupervisedProcess {
  readonly pid: number | undefined;
  /** Resolves once the child is ready; rejects with why it is not. Settles no later than `exited`. */
  readonly ready: Promise<unknown>;
  /** Resolves when the process ended, however; also for a process that could not be spawned. */
  readonly exited: Promise<Exit>;
  /** True while the process runs. */
  readonly running: boolean;
  /** Asks the process to stop (SIGTERM), forces it after `timeoutMs`. */
  stop(timeoutMs: number): Promise<Exit>;
  /** SIGKILL now, synchronously. */
  killNow(): void;
}

/**
 * `starting`: a run is on its way to ready (the first or a restart); `running`: it is ready;
 * `backoff`: it exited and waits for its restart; `stopping`/`stopped`: `stop()` was called
 * (`stopped` also once a retired child is down);
 * `failed`: the first start failed, and there is no restart.
 */
export type ChildState = 'starting' | 'running' | 'backoff' | 'stopping' | 'stopped' | 'failed';

/** The backoff of one supervisor. */
export interface RestartPolicy {
  /** @default DEFAULT_RESTART_BACKOFF_MS */
  readonly initialDelayMs: number;
  /** @default MAX_RESTART_BACKOFF_MS */
  readonly maxDelayMs: number;
  /** @default RESTART_BACKOFF_RESET_MS */
  readonly resetAfterMs: number;
}

/** The policy `up` uses. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: DEFAULT_RESTART_BACKOFF_MS,
  maxDelayMs: MAX_RESTART_BACKOFF_MS,
  resetAfterMs: RESTART_BACKOFF_RESET_MS,
};

/** What a supervisor reports; `restart` numbers the restarts of this child from 1. */
export type SupervisorEvent =
  /** A ready child exited unasked; restart number `restart` follows in `delayMs`. */
  | { type: 'exited'; exit: Exit; restart: number; delayMs: number }
  /** Restart `failed` did not come up (`why`); restart number `restart` follows in `delayMs`. */
  | { type: 'restart-failed'; failed: number; why: string; restart: number; delayMs: number }
  /** Restart number `restart` is ready again. */
  | { type: 'restarted'; restart: number; pid: number | undefined };

/** The delay before a restart, after `failures` unasked exits in a row (1 for the first). */
export function backoffDelay(failures: number, policy: RestartPolicy): number {
  const doublings = Math.max(0, failures - 1);
  // 2 ** 1024 is Infinity; Math.min caps it either way.
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** doublings);
}

/** One line for `up`'s output, after `up: `. */
export function describeEvent(name: string, event: SupervisorEvent): string {
  switch (event.type) {
    case 'exited':
      return (
        `${name} exited unexpectedly (${describeExit(event.exit)}); ` +
        `restart ${event.restart} in ${event.delayMs} ms`
      );
    case 'restart-failed':
      return (
        `${name} restart ${event.failed} failed: ${event.why}; ` +
        `restart ${event.restart} in ${event.delayMs} ms; the rest keep running`
      );
    case 'restarted':
      return `${name} is back (restart ${event.restart}, pid ${String(event.pid)})`;
  }
}

/** Supervises one child: see the module comment. */
export class Supervisor<P extends SupervisedProcess> {
  private currentState: ChildState = 'starting';
  private current: P | undefined;
  /** Restarts begun so far. */
  private restartCount = 0;
  /** Unasked exits since the child last stayed up for `resetAfterMs`. */
  private failures = 0;
  /** When the current run became ready. */
  private readyAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopping: Promise<Exit | undefined> | undefined;
  /** Set by `retire()`: an exit from now on ends supervision instead of starting a restart. */
  private retired = false;

  /**
   * @param launch starts one run; it may throw (a spawn that fails at once), which counts as a
   *   failed start
   * @param onEvent hears every exit and restart
   * @param now the clock, for the backoff reset (tests pass their own)
   */
  constructor(
    private readonly launch: () => P,
    private readonly onEvent: (event: SupervisorEvent) => void,
    private readonly policy: RestartPolicy = DEFAULT_RESTART_POLICY,
    private readonly now: () => number = Date.now,
  ) {}

  get state(): ChildState {
    return this.currentState;
  }

  /** How often the child was restarted (begun, whether or not it came up). */
  get restarts(): number {
    return this.restartCount;
  }

  /** The current run (undefined before the first start and while a spawn failed). */
  get process(): P | undefined {
    return this.current;
  }

  /**
   * Starts the child; resolves with the run once it is ready, from when on it is supervised.
   * Rejects (state `failed`) when this first run fails before it is ready. Call once.
   */
  async start(): Promise<P> {
    let run: P;
    try {
      run = this.launch();
    } catch (err) {
      this.currentState = 'failed';
      throw err;
    }
    this.watch(run, true);
    await run.ready;
    return run;
  }

  /**
   * Stops the child for good (cancels a pending restart); resolves with the exit of the run that
   * was still running, or undefined when none was. Runs once, however often it is called.
   */
  stop(timeoutMs: number): Promise<Exit | undefined> {
    this.stopping ??= (async () => {
      this.currentState = 'stopping';
      clearTimeout(this.timer);
      const run = this.current;
      const exit = run?.running === true ? await run.stop(timeoutMs) : undefined;
      this.currentState = 'stopped';
      return exit;
    })();
    return this.stopping;
  }

  /**
   * Restarts nothing from now on (a pending one is cancelled), but leaves a running child alone
   * until `stop()`: `up` retires every child when its shutdown begins, then stops them in order.
   */
  retire(): void {
    this.retired = true;
    clearTimeout(this.timer);
    if (this.currentState === 'backoff') this.currentState = 'stopped';
  }

  /** Synchronous last resort: SIGKILL the current run, restart nothing. */
  killNow(): void {
    if (this.currentState !== 'stopped') this.currentState = 'stopping';
    clearTimeout(this.timer);
    this.current?.killNow();
  }

  /** True once `stop()` or `killNow()` was called: exits are expected from then on. */
  private get finished(): boolean {
    return this.currentState === 'stopping' || this.currentState === 'stopped';
  }

  private watch(run: P, first: boolean): void {
    this.current = run;
    this.currentState = 'starting';
    this.readyAt = undefined;
    run.ready.then(
      () => {
        if (this.current !== run || this.finished) return;
        this.currentState = 'running';
        this.readyAt = this.now();
        if (!first) this.onEvent({ type: 'restarted', restart: this.restartCount, pid: run.pid });
      },
      () => {}, // handled with the exit, which follows
    );
    void run.exited.then((exit) => this.exited(run, exit, first));
  }

  private async exited(run: P, exit: Exit, first: boolean): Promise<void> {
    if (this.current !== run || this.finished) return;
    if (this.readyAt === undefined) {
      // It never became ready: `ready` has rejected (or does so now) with the reason.
      const why = await run.ready.then(
        () => `exited (${describeExit(exit)}) before it was ready`,
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      if (this.current !== run || this.finished) return;
      if (first) {
        this.currentState = 'failed'; // start() rejects with the reason; up decides
        return;
      }
      this.restartFailed(why);
      return;
    }
    if (this.now() - this.readyAt >= this.policy.resetAfterMs) this.failures = 0;
    this.scheduleRestart((restart, delayMs) => ({ type: 'exited', exit, restart, delayMs }));
  }

  /** A restart that did not come up: retried after the backoff, the rest of the cluster untouched. */
  private restartFailed(why: string): void {
    this.scheduleRestart((restart, delayMs) => ({
      type: 'restart-failed',
      failed: this.restartCount,
      why,
      restart,
      delayMs,
    }));
  }

  private scheduleRestart(event: (restart: number, delayMs: number) => SupervisorEvent): void {
    if (this.retired) {
      this.currentState = 'stopped';
      return;
    }
    this.failures++;
    const delayMs = backoffDelay(this.failures, this.policy);
    this.currentState = 'backoff';
    this.onEvent(event(this.restartCount + 1, delayMs));
    // Not unref()ed: while every child waits for its restart, this timer is what keeps `up` alive.
    this.timer = setTimeout(() => this.restart(), delayMs);
  }

  private restart(): void {
    if (this.finished) return;
    this.restartCount++;
    let run: P;
    try {
      run = this.launch();
    } catch (err) {
      this.current = undefined;
      this.restartFailed(`could not be spawned: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.watch(run, false);
  }
}
