/**
 * Memory of the cluster's processes, read from /proc/<pid>/status: VmRSS (resident now) sampled
 * on an interval, its peak kept per window, and VmHWM (the kernel's own resident peak since the
 * process started). The overload scenario compares the peaks of its rounds to catch a leak.
 */
import { readFileSync } from 'node:fs';

/** How often RSS is sampled: often enough to see a burst of a one-second round. */
export const RSS_SAMPLE_MS = 200;

const KIB = 1024;

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

  constructor(private readonly watched: readonly Watched[]) {
    this.sample();
    this.timer = setInterval(() => this.sample(), RSS_SAMPLE_MS);
  }

  stop(): Map<string, RssPeak> {
    clearInterval(this.timer);
    this.sample();
    return this.peaks;
  }

  private sample(): void {
    for (const w of this.watched) {
      const m = readMemory(w.pid);
      if (m === undefined) continue;
      const p = this.peaks.get(w.name) ?? { peakRssKiB: 0, hwmKiB: 0 };
      this.peaks.set(w.name, { peakRssKiB: Math.max(p.peakRssKiB, m.rssKiB), hwmKiB: m.hwmKiB });
    }
  }
}

/** KiB as MiB with one decimal, for details. */
export function mib(kib: number): string {
  return (kib / KIB).toFixed(1);
}
