/** Checks that a fault on a process really happened (issue 11: every fault is verified). */
import { readFileSync } from 'node:fs';

/** Polling interval and limit for a fault to show in the process table. */
const POLL_MS = 10;
const VERIFY_TIMEOUT_MS = 5_000;

/** True once `pid` no longer exists (kill(pid, 0) throws ESRCH). */
export function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** The process state letter of `/proc/<pid>/stat` (R, S, T, Z, ...), or undefined if gone. */
export function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Waits until `check` holds; resolves false after the verification limit. */
export async function eventually(check: () => boolean): Promise<boolean> {
  const deadline = Date.now() + VERIFY_TIMEOUT_MS;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return true;
}
