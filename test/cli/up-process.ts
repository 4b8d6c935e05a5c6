/**
 * Helpers for tests that run `switchyard up` as a real process: its output, waited on by
 * pattern; its child processes, found in /proc; a process that is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/models.ts';

const BIN = join(ROOT, 'bin', 'switchyard.mjs');
/** How long `up` may take to print its summary on a loaded 2-core machine. */
export const UP_TIMEOUT_MS = 90_000;

/** A running `up`, with everything it printed on stdout and stderr. */
export interface UpProcess {
  readonly child: ChildProcess;
  /** Everything printed so far. */
  output(): string;
  /**
   * Resolves with the match of `marker` in what was printed after offset `from` (default: from
   * the start); rejects after `timeoutMs` or when `up` exits first.
   */
  waitFor(marker: RegExp, timeoutMs?: number, from?: number): Promise<RegExpExecArray>;
}

/** Starts `switchyard up <args>` with its children logging warnings only. */
export function startUp(args: readonly string[]): UpProcess {
  const child = spawn(process.execPath, [BIN, 'up', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SWITCHYARD_LOG_LEVEL: 'warn' },
  });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer): void => {
    out += d.toString();
    for (const l of listeners) l();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => out,
    waitFor(marker, timeoutMs = UP_TIMEOUT_MS, from = 0) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const match = marker.exec(out.slice(from));
          if (match === null) return;
          done();
          resolve(match);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${String(marker)} within ${timeoutMs} ms:\n${out}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        void exited.then(() => {
          if (!listeners.has(check)) return;
          done();
          reject(new Error(`up exited (${String(child.exitCode ?? child.signalCode)}):\n${out}`));
        });
        check();
      });
    },
  };
}

/** A process: its pid and its command line. */
export interface ProcessInfo {
  readonly pid: number;
  readonly argv: readonly string[];
}

/** The processes whose parent is `ppid` (Linux /proc). */
export function childrenOf(ppid: number): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== ppid) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      found.push({ pid: Number(entry), argv });
    } catch {
      // it exited while we looked
    }
  }
  return found;
}

/** The child of `up` that runs actor `id` (`--id <id>` on its command line). */
export function actorPid(upPid: number, id: string): number {
  const child = childrenOf(upPid).find((p) => p.argv.some((a, i) => a === id && p.argv[i - 1] === '--id'));
  if (child === undefined) throw new Error(`no child of up ${upPid} runs --id ${id}`);
  return child.pid;
}

/** True once `pid` is no longer running (gone, or a zombie nobody has reaped yet). */
export function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Resolves once every pid is gone; rejects with those still running after `timeoutMs`. */
export async function waitGone(pids: readonly number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = pids.filter((p) => !isGone(p));
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`still running after ${timeoutMs} ms: ${left.join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Stops a `up` left running by a failed test: a second SIGINT kills everything at once. */
export async function killUp(up: UpProcess | undefined): Promise<void> {
  const child = up?.child;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 200)); // two signals sent at once may arrive as one
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
