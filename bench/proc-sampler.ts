/**
 * A benchmark's view of one process from /proc: VmRSS and CPU seconds (chaos/rss.ts reads them)
 * with the machine's CPU from /proc/stat, sampled on a short interval and read back by window.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { readCpuSeconds, readMemory } from '../chaos/rss.ts';

/** How often a process is sampled (a swap's memory peak lasts well under a second). */
export const RSS_SAMPLE_MS = 50;

/** Clock ticks per second of /proc/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_S = 100;

/** Fields of /proc/stat's cpu line that partition the time (user … steal; guest is inside user). */
const CPU_FIELDS = 8;

/** The machine's CPU seconds so far, busy and in all (every core), from /proc/stat. */
function machineCpu(): { busyS: number; totalS: number } {
  const fields = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1, CPU_FIELDS + 1)
    .map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  return { busyS: (total - idle) / TICKS_PER_S, totalS: total / TICKS_PER_S };
}

/** One sample: when (ms), VmRSS (KiB) and CPU seconds of the process, and the machine's CPU. */
export interface Sample {
  at: number;
  rssKiB: number;
  cpuS: number;
  machineBusyS: number;
  machineTotalS: number;
}

/**
 * VmRSS and CPU of one process, and the machine's CPU, every RSS_SAMPLE_MS: memory peaks of a
 * swap last well under a second, and the CPU shows what else the machine had to do.
 */
export class ProcSampler {
  readonly samples: Sample[] = [];
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pid: number) {
    this.sample();
    this.timer = setInterval(() => this.sample(), RSS_SAMPLE_MS);
  }
  stop(): void {
    clearInterval(this.timer);
  }
  /** VmRSS samples in [from, to), KiB. */
  rssBetween(from: number, to: number): number[] {
    return this.within(from, to).map((x) => x.rssKiB);
  }
  /** Cores the process used in [from, to) (1 = one core busy), and the machine's busy share (0–1). */
  cpuBetween(from: number, to: number): { cores: number; machineBusy: number } {
    const w = this.within(from, to);
    const [a, b] = [w[0], w.at(-1)];
    if (a === undefined || b === undefined || b.at <= a.at) return { cores: NaN, machineBusy: NaN };
    return {
      cores: (b.cpuS - a.cpuS) / ((b.at - a.at) / 1_000),
      machineBusy: (b.machineBusyS - a.machineBusyS) / (b.machineTotalS - a.machineTotalS),
    };
  }
  private within(from: number, to: number): Sample[] {
    return this.samples.filter((x) => x.at >= from && x.at < to);
  }
  private sample(): void {
    const m = readMemory(this.pid);
    const cpu = readCpuSeconds(this.pid);
    if (m === undefined || cpu === undefined) return;
    const machine = machineCpu();
    this.samples.push({
      at: performance.now(),
      rssKiB: m.rssKiB,
      cpuS: cpu,
      machineBusyS: machine.busyS,
      machineTotalS: machine.totalS,
    });
  }
}
