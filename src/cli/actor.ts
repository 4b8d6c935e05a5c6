/**
 * Lifecycle of one actor process (`switchyard replica`, `router`, `bridge`): start, report
 * readiness (to a human on stdout and to `up` over IPC), drain on SIGTERM/SIGINT, exit.
 * The first signal calls `stop()` once and exits 0 when it resolves; a second one forces exit 1
 * (a human pressing Ctrl-C twice means it).
 */
import { createLogger } from '../telemetry/logger.ts';
import { initTracing } from '../telemetry/tracing.ts';
import { SERVICE_NAMES } from '../telemetry/tracing-options.ts';
import { hasParent, tellParent } from './ipc.ts';

/** A started actor, as `startReplica`, `startRouter` and `startBridge` return it. */
export interface RunningActor {
  readonly id: string;
  /** Where it serves HTTP (the bridge), reported to `up` for its summary. */
  readonly url?: string;
  stop(): Promise<void>;
  readonly closed: Promise<void>;
}

/** The actors a `switchyard` process can be. */
export type ActorRole = 'replica' | 'router' | 'bridge' | 'collector';

/** How to start one actor and describe it. */
export interface ActorRun {
  readonly role: ActorRole;
  readonly id: string;
  /** Starts the actor; `progress` prints a line for humans. */
  start(progress: (line: string) => void): Promise<RunningActor>;
  /** What it serves, for `up`'s summary (e.g. `tiny-gpt2@1, cpu`). */
  describe?(): Promise<string | undefined>;
}

/**
 * After the parent `up` vanished (its IPC channel closed), how long a child may drain before it
 * exits anyway: nobody is left to SIGKILL it, and it must not outlive the cluster as an orphan.
 */
export const ORPHAN_EXIT_TIMEOUT_MS = 30_000;

/** Writes one progress line to stdout. */
export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Runs an actor until a signal stops it; resolves to the exit status. Start-up errors reject. */
export async function runActor(run: ActorRun): Promise<number> {
  const name = `${run.role} ${run.id}`;
  let reason: string | undefined;
  let wake = (): void => {};
  const stopRequested = new Promise<void>((resolve) => (wake = resolve));
  const onStop = (why: string): void => {
    if (reason !== undefined) {
      say(`${name}: ${why} again, exiting without finishing the drain`);
      process.exit(1);
    }
    reason = why;
    wake();
  };
  const onSignal = (signal: NodeJS.Signals): void => onStop(signal);
  const onDisconnect = (): void => {
    setTimeout(() => process.exit(1), ORPHAN_EXIT_TIMEOUT_MS).unref();
    onStop('parent gone');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (hasParent()) process.on('disconnect', onDisconnect);
  // Tracing belongs to the process, not to the actor: tests that run several actors in one
  // process must not fight over the global provider, so startRouter/startReplica/startBridge
  // never install it. Spans ended during the drain are exported by the shutdown in `finally`.
  const tracing = initTracing({
    serviceName: SERVICE_NAMES[run.role],
    actorId: run.id,
    role: run.role,
    logger: createLogger({ role: run.role, id: run.id }),
  });
  try {
    const actor = await run.start(say);
    await tellParent({
      type: 'ready',
      role: run.role,
      id: run.id,
      detail: await run.describe?.(),
      url: actor.url,
    });
    const closedByItself = actor.closed.then(
      () => true,
      () => true,
    );
    if (reason === undefined) await Promise.race([stopRequested, closedByItself]);
    if (reason === undefined) {
      say(`${name}: stopped unexpectedly (its logs on stderr say why)`);
      return 1;
    }
    say(`${name}: ${reason}: draining…`);
    await actor.stop();
    say(`${name}: stopped`);
    return 0;
  } finally {
    await tracing.shutdown();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('disconnect', onDisconnect);
  }
}
