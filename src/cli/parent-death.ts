/**
 * A parent-death signal for every process `up` starts. Exit hooks do not run when `up` is
 * SIGKILLed (or the OOM killer takes it), and nats-server cannot watch its parent, so each child
 * is started through util-linux `setpriv --pdeathsig KILL -- <command>`: setpriv sets
 * `PR_SET_PDEATHSIG` and execs the command in the same process (same pid), and the kernel kills
 * it the moment `up` dies. The kernel sends the signal when the *thread* that forked the child
 * exits: `child_process` spawns from the main thread, and so must every caller of this module.
 * Without a working setpriv, commands start unwrapped: `up` warns once; its Node children still
 * exit when their IPC channel to `up` closes, but a local nats-server would be left behind.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Where util-linux installs setpriv on Debian and most other distributions. */
const SETPRIV_CANDIDATES = ['/usr/bin/setpriv', '/bin/setpriv'];
/** The signal a child gets when `up` dies: a dead `up` cannot stop it in order any more. */
const PARENT_DEATH_SIGNAL = 'KILL';
/** How long the one-off check that setpriv works may take. */
const PROBE_TIMEOUT_MS = 5_000;

/** A command line to spawn. */
export interface CommandLine {
  readonly command: string;
  readonly args: readonly string[];
}

/** The setpriv that works here, or why there is none; checked once per process. */
type Setpriv = { ok: true; bin: string } | { ok: false; why: string };
let setpriv: Setpriv | undefined;

function findSetpriv(): Setpriv {
  const onPath = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '')
    .map((dir) => join(dir, 'setpriv'));
  const bin = [...onPath, ...SETPRIV_CANDIDATES].find((p) => existsSync(p));
  if (bin === undefined) return { ok: false, why: 'setpriv (util-linux) is not installed' };
  // A kernel or sandbox that refuses the prctl would make every child fail to start: try it once.
  const probe = spawnSync(bin, ['--pdeathsig', PARENT_DEATH_SIGNAL, '--', 'true'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: PROBE_TIMEOUT_MS,
  });
  if (probe.status === 0) return { ok: true, bin };
  const detail = probe.error?.message ?? probe.stderr.toString('utf8').trim();
  return {
    ok: false,
    why: `${bin} --pdeathsig does not work here (${detail || `status ${String(probe.status)}`})`,
  };
}

function resolved(): Setpriv {
  setpriv ??= findSetpriv();
  return setpriv;
}

/**
 * Why children cannot get a parent-death signal, for `up` to warn once; undefined when they can.
 */
export function parentDeathSignalProblem(): string | undefined {
  const s = resolved();
  return s.ok ? undefined : s.why;
}

/** `command args` wrapped so that the kernel kills it when this process dies (unwrapped without setpriv). */
export function withParentDeathSignal(command: string, args: readonly string[]): CommandLine {
  const s = resolved();
  if (!s.ok) return { command, args };
  return { command: s.bin, args: ['--pdeathsig', PARENT_DEATH_SIGNAL, '--', command, ...args] };
}
