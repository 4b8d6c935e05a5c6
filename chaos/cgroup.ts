/**
 * CPU starvation with a cgroup: a child group of the `cpu` controller with a CFS quota, holding
 * every thread of one process, and its throttling counter for the runner's verification. cgroup
 * v1 (`/sys/fs/cgroup/cpu`, `cpu.cfs_quota_us`) and v2 (`cpu.max` on the unified hierarchy) are
 * both supported; `cpuCgroupUnavailable()` says why neither can be used here.
 */
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

/** Where the v1 `cpu` controller is mounted on this kind of machine. */
const V1_CPU_ROOT = '/sys/fs/cgroup/cpu';
/** The v2 unified hierarchy: at the root when it is the only one, else under `unified`. */
const V2_ROOTS = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];
/** The CFS period the v2 group gets (v1 keeps the parent's `cpu.cfs_period_us`). */
const V2_PERIOD_US = 100_000;

/** Thrown when the group cannot be made, filled or removed; the message names the file. */
export class CgroupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CgroupError';
  }
}

type Flavor = { version: 1; root: string } | { version: 2; root: string };

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The hierarchy to use, v1 first (it is what this machine mounts), or undefined. */
function flavor(): Flavor | undefined {
  if (existsSync(join(V1_CPU_ROOT, 'cpu.cfs_quota_us')) && writable(V1_CPU_ROOT))
    return { version: 1, root: V1_CPU_ROOT };
  for (const root of V2_ROOTS) {
    const controllers = join(root, 'cgroup.controllers');
    if (!existsSync(controllers) || !writable(root)) continue;
    const subtree = join(root, 'cgroup.subtree_control');
    const enabled = existsSync(subtree) ? readFileSync(subtree, 'utf8').split(/\s+/) : [];
    if (
      readFileSync(controllers, 'utf8').split(/\s+/).includes('cpu') &&
      (enabled.includes('cpu') || writable(subtree))
    )
      return { version: 2, root };
  }
  return undefined;
}

/** Why no CPU cgroup can be made here (for a scenario's skip), or undefined when one can. */
export function cpuCgroupUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create a cpu cgroup';
  if (flavor() === undefined)
    return `no writable cgroup cpu controller: neither v1 ${V1_CPU_ROOT} nor v2 ${V2_ROOTS.join(' / ')} with cpu`;
  return undefined;
}

function write(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (err) {
    throw new CgroupError(`cannot write ${JSON.stringify(value)} to ${path}: ${(err as Error).message}`);
  }
}

/** The thread ids of `pid` (every thread must be moved: v1 `tasks` takes one tid at a time). */
function threads(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch (err) {
    throw new CgroupError(`cannot list the threads of pid ${pid}: ${(err as Error).message}`);
  }
}

/** A cpu cgroup with a quota, holding one process; `release()` lifts the quota and removes it. */
export class CpuLimit {
  private released = false;

  private constructor(
    private readonly flavor: Flavor,
    /** The group's directory. */
    readonly dir: string,
    readonly pid: number,
  ) {}

  /**
   * Makes `<root>/<name>`, sets its quota to `fraction` of one CPU per period, and moves every
   * thread of `pid` into it.
   */
  static limit(name: string, pid: number, fraction: number): CpuLimit {
    if (!(fraction > 0 && fraction <= 1))
      throw new CgroupError(`cpu fraction must be in (0, 1], got ${fraction}`);
    const f = flavor();
    if (f === undefined) throw new CgroupError(cpuCgroupUnavailable() ?? 'no cpu cgroup controller');
    const dir = join(f.root, name);
    try {
      mkdirSync(dir);
    } catch (err) {
      throw new CgroupError(`cannot create ${dir}: ${(err as Error).message}`);
    }
    const limit = new CpuLimit(f, dir, pid);
    try {
      if (f.version === 1) {
        const period = Number(readFileSync(join(dir, 'cpu.cfs_period_us'), 'utf8'));
        write(join(dir, 'cpu.cfs_quota_us'), String(Math.max(1_000, Math.round(period * fraction))));
        for (const tid of threads(pid)) write(join(dir, 'tasks'), String(tid));
      } else {
        const subtree = join(f.root, 'cgroup.subtree_control');
        if (!readFileSync(subtree, 'utf8').split(/\s+/).includes('cpu')) write(subtree, '+cpu');
        write(
          join(dir, 'cpu.max'),
          `${Math.max(1_000, Math.round(V2_PERIOD_US * fraction))} ${V2_PERIOD_US}`,
        );
        write(join(dir, 'cgroup.procs'), String(pid));
      }
    } catch (err) {
      limit.release();
      throw err;
    }
    return limit;
  }

  /** `cpu.stat`'s nr_throttled: periods in which the group ran out of quota. */
  throttled(): number {
    const stat = readFileSync(join(this.dir, 'cpu.stat'), 'utf8');
    const m = /^nr_throttled (\d+)$/m.exec(stat);
    if (m === null) throw new CgroupError(`${this.dir}/cpu.stat has no nr_throttled`);
    return Number(m[1]);
  }

  /** Whether every live thread of the process is in the group (v1) or the process is (v2). */
  holds(): boolean {
    const file = join(this.dir, this.flavor.version === 1 ? 'tasks' : 'cgroup.procs');
    const members = new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number));
    return this.flavor.version === 1 ? threads(this.pid).every((t) => members.has(t)) : members.has(this.pid);
  }

  /** Lifts the quota, moves the process back to the root group and removes the group. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const v1 = this.flavor.version === 1;
    try {
      write(join(this.dir, v1 ? 'cpu.cfs_quota_us' : 'cpu.max'), v1 ? '-1' : 'max');
    } catch {
      // The group may not have been filled yet; removing it below is what matters.
    }
    const members = join(this.dir, v1 ? 'tasks' : 'cgroup.procs');
    const parent = join(this.flavor.root, v1 ? 'tasks' : 'cgroup.procs');
    if (existsSync(members))
      for (const id of readFileSync(members, 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(parent, id);
        } catch {
          // A thread that exited meanwhile needs no moving.
        }
      }
    try {
      rmdirSync(this.dir);
    } catch (err) {
      throw new CgroupError(`cannot remove ${this.dir}: ${(err as Error).message}`);
    }
  }
}
