/**
 * The heartbeat interval a replica announces. Monitors count silence in the sender's announced
 * interval (src/cluster/heartbeat-monitor.ts), so a replica whose own beats run late (its process
 * starved of CPU by a cgroup quota, a noisy neighbour, a long GC) would be declared dead while its
 * engine still moves. The replica measures how late its scheduled beats really are and announces
 * its interval stretched by the worst recent lateness, which then decays: a healthy replica
 * announces exactly its configured interval, and a starved one buys its monitors' patience for
 * the lateness it has shown, at the price of a slower death verdict while it stays slow.
 */

/** How fast a stretch decays once beats are on time again: halved every this many ms. */
export const STRETCH_HALF_LIFE_MS = 30_000;

/** The most an announced interval is stretched, as a multiple of the configured one. */
export const MAX_STRETCH_FACTOR = 10;

/** Tracks the lateness of scheduled beats and gives the interval to announce. */
export class AnnouncedInterval {
  private stretchMs = 0;
  private lastTickAt: number | undefined;

  constructor(private readonly intervalMs: number) {}

  /** Records a scheduled beat at `now` (epoch ms) and returns the interval to announce with it. */
  tick(now: number): number {
    const last = this.lastTickAt;
    this.lastTickAt = now;
    if (last !== undefined) {
      const gap = Math.max(0, now - last);
      this.stretchMs *= 0.5 ** (gap / STRETCH_HALF_LIFE_MS);
      this.stretchMs = Math.max(this.stretchMs, gap - this.intervalMs);
      // Stored capped, so one enormous gap (a suspended laptop) decays as fast as a capped one.
      this.stretchMs = Math.min(this.stretchMs, this.intervalMs * (MAX_STRETCH_FACTOR - 1));
    }
    return this.current();
  }

  /** The interval to announce now. */
  current(): number {
    const max = this.intervalMs * MAX_STRETCH_FACTOR;
    return Math.round(Math.min(max, this.intervalMs + this.stretchMs));
  }
}
