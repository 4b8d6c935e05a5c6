/**
 * Memory of the cluster's processes, read from /proc/<pid>/status: VmRSS (resident now) sampled
 * on an interval, its peak kept per window, and VmHWM (the kernel's own resident peak since the
 * process started). The overload scenario compares the peaks of its rounds to catch a leak.
 */
import { readFileSync } from 'node:fs';

/** How often RSS is sampled: often enough to see a burst of a one-second round. */
export const RSS_SAMPLE_MS = 200;

const KIB = 1024;
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_S = 100;

/** One process to watch. */
export interface Watched {
  name: string;
  pid: number;
}

/** A process's memory in a window, in KiB. */
export interface RssPeak {
  /** Largest VmRSS sampled in the window. */
  peakRssKiB: number;
  /** VmHWM at the end of the window. */
  hwmKiB: number;
  /** CPU the process used in the window, as a share of one core (1 = 100 %). */
  cpuCores: number;
}

/** CPU seconds (user + system) `pid` has used, or undefined when it is gone. */
export function readCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (in parentheses): state is the 3rd, utime the 14th, stime the 15th.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / TICKS_PER_S;
  } catch {
    return undefined;
  }
}

/** VmRSS and VmHWM of `pid` in KiB, or undefined when the process is gone. */
export function readMemory(pid: number): { rssKiB: number; hwmKiB: number } | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    return m === null ? 0 : Number(m[1]);
  };
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
}

/** Samples every watched process until `stop()`, which returns each one's peak in the window. */
export class RssWindow {
  private readonly peaks = new Map<string, RssPeak>();
  private readonly timer: NodeJS.Timeout;
  private readonly cpuAtStart = new Map<string, number>();
  private readonly startedAt = Date.now();

  constructor(private readonly watched: readonly Watched[]) {
    for (const w of watched) {
      const cpu = readCpuSeconds(w.pid);
      if (cpu !== undefined) this.cpuAtStart.set(w.name, cpu);
    }
    this.sample();
    this.timer = setInterval(() => this.sample(), RSS_SAMPLE_MS);
  }

  stop(): Map<string, RssPeak> {
    clearInterval(this.timer);
    this.sample();
    const seconds = (Date.now() - this.startedAt) / 1000;
    for (const w of this.watched) {
      const p = this.peaks.get(w.name);
      const start = this.cpuAtStart.get(w.name);
      const end = readCpuSeconds(w.pid);
      if (p !== undefined && start !== undefined && end !== undefined && seconds > 0)
        p.cpuCores = (end - start) / seconds;
    }
    return this.peaks;
  }

  private sample(): void {
    for (const w of this.watched) {
      const m = readMemory(w.pid);
      if (m === undefined) continue;
      const p = this.peaks.get(w.name) ?? { peakRssKiB: 0, hwmKiB: 0, cpuCores: 0 };
      this.peaks.set(w.name, { ...p, peakRssKiB: Math.max(p.peakRssKiB, m.rssKiB), hwmKiB: m.hwmKiB });
    }
  }
}

/** KiB as MiB with one decimal, for details. */
export function mib(kib: number): string {
  return (kib / KIB).toFixed(1);
}
