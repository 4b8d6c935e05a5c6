/**
 * Memory that stays: what each actor holds once a round of load is over and a full GC has run,
 * read by the memory probe preloaded into it (chaos/memory-probe.mjs). A leak keeps something per
 * request, so it shows here round after round: as live JS heap after GC (objects kept) or as
 * resident memory that does not come back (native memory kept). The peak RSS of a round does not
 * tell a leak from V8 sizing its heap for a burst: in the overload scenario's bridges V8's
 * reserved heap grew 71 → 86 MiB over three rounds while the live heap after GC stayed at
 * 20.5–20.8 MiB (chaos/README.md, "A bridge's peak RSS grew under overload").
 */
import type { ActorProcess } from './actors.ts';
import type { InvariantCheck } from './history/types.ts';
import { mib, type RssPeak } from './rss.ts';

/** Live JS heap after GC may grow by this share plus {@link HEAP_SLACK_KIB} from round 1 to the last. */
export const HEAP_GROWTH_FACTOR = 1.05;
/** 1 MiB: ~700 bytes per request of a 1,500-request round; a kept request object is larger. */
export const HEAP_SLACK_KIB = 1024;
/** Settled RSS of the last round at most round 1's peak × this plus {@link RSS_SLACK_KIB}. */
export const RSS_GROWTH_FACTOR = 1.1;
/** 16 MiB: allocator and V8 page caches that settle after the first burst. */
export const RSS_SLACK_KIB = 16 * 1024;

/** One actor's memory after a round and a full GC, KiB. */
export interface Settled {
  rssKiB: number;
  heapUsedKiB: number;
  heapTotalKiB: number;
  /** V8's young generation (both semi-spaces), reserved: the part of heapTotal a burst grows. */
  newSpaceKiB: number;
  externalKiB: number;
}

/** The name an actor has in the checks' details (`bridge br1`). */
export function actorName(a: ActorProcess): string {
  return `${a.role} ${a.id}`;
}

/**
 * Every actor's memory after a full GC; writes a heap snapshot of each one in `snapshotsOf`
 * to `<snapshotDir>/<id>-round<round>.heapsnapshot` when `snapshotDir` is given.
 */
export async function settle(
  actors: readonly ActorProcess[],
  round: number,
  snapshot?: { dir: string; of: (a: ActorProcess) => boolean },
): Promise<Map<string, Settled>> {
  const reports = await Promise.all(
    actors.map(async (a) => {
      const file =
        snapshot !== undefined && snapshot.of(a)
          ? `${snapshot.dir}/${a.id}-round${round}.heapsnapshot`
          : undefined;
      const r = await a.memory({ gc: true, snapshot: file });
      if (r.error !== undefined) throw new Error(`${actorName(a)}: memory probe failed: ${r.error}`);
      const s: Settled = {
        rssKiB: r.after.rss,
        heapUsedKiB: r.after.heapUsed,
        heapTotalKiB: r.after.heapTotal,
        newSpaceKiB: r.spaces.new_space?.sizeKiB ?? 0,
        externalKiB: r.after.external,
      };
      return [actorName(a), s] as const;
    }),
  );
  return new Map(reports);
}

/**
 * The leak check over the rounds: for every probed actor, the live heap after GC of the last
 * round at most round 1's × {@link HEAP_GROWTH_FACTOR} + {@link HEAP_SLACK_KIB}, and the settled
 * RSS of the last round at most round 1's peak × {@link RSS_GROWTH_FACTOR} + {@link RSS_SLACK_KIB}
 * (once quiet, no actor holds more than it needed at the height of the first burst).
 */
export function settledCheck(
  names: readonly string[],
  settled: ReadonlyArray<ReadonlyMap<string, Settled>>,
  peaks: ReadonlyArray<ReadonlyMap<string, RssPeak>>,
): InvariantCheck {
  const first = settled[0];
  const last = settled[settled.length - 1];
  const grown: string[] = [];
  const figures = names.map((name) => {
    const a = first?.get(name);
    const z = last?.get(name);
    const peak1 = peaks[0]?.get(name);
    if (a === undefined || z === undefined || peak1 === undefined) {
      grown.push(`${name} (not measured)`);
      return `${name} not measured`;
    }
    if (z.heapUsedKiB > a.heapUsedKiB * HEAP_GROWTH_FACTOR + HEAP_SLACK_KIB)
      grown.push(`${name} (live heap)`);
    if (z.rssKiB > peak1.peakRssKiB * RSS_GROWTH_FACTOR + RSS_SLACK_KIB) grown.push(`${name} (settled RSS)`);
    const series = (f: (s: Settled) => number): string =>
      settled.map((r) => (r.get(name) === undefined ? '-' : mib(f(r.get(name)!)))).join('/');
    return (
      `${name} heapUsed ${series((s) => s.heapUsedKiB)}, heapTotal ${series((s) => s.heapTotalKiB)} ` +
      `(new space ${series((s) => s.newSpaceKiB)}), ` +
      `external ${series((s) => s.externalKiB)}, RSS ${series((s) => s.rssKiB)} (round 1 peak ${mib(peak1.peakRssKiB)})`
    );
  });
  const rounds = settled.length;
  return {
    name:
      `overload: no actor keeps memory across ${rounds} rounds (after a full GC at each round's end: live heap of round ${rounds} ≤ round 1 × ${HEAP_GROWTH_FACTOR} + ${HEAP_SLACK_KIB / 1024} MiB; ` +
      `RSS ≤ round 1's peak × ${RSS_GROWTH_FACTOR} + ${RSS_SLACK_KIB / 1024} MiB)`,
    ok: grown.length === 0,
    detail: `MiB per round, after GC: ${figures.join('; ')}${grown.length > 0 ? `; grew: ${grown.join(', ')}` : ''}`,
  };
}
