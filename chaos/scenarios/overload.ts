/**
 * overload: measure the cluster's capacity through the bridges, then offer 10× that for three
 * rounds. Bounded queues must refuse the excess at once (HTTP 429 with Retry-After, `busy` over
 * NATS) instead of letting it wait until deadlines pass; nothing answers 5xx, nothing is lost or
 * hung, every completion is exact, and no actor keeps memory from round to round: the node
 * actors' live heap and RSS after a full GC at each round's end (settled-memory.ts), the NATS
 * nodes' peak RSS.
 */
import { DEFAULT_MAX_BATCH_SIZE } from '../../src/engine/options.ts';
import { FloodClient } from '../flood.ts';
import type { FloodStats } from '../flood-protocol.ts';
import type { InvariantCheck } from '../history/types.ts';
import { loadRequests, withReferences } from '../references.ts';
import type { ActorProcess } from '../actors.ts';
import { mib, RssWindow, type RssPeak, type Watched } from '../rss.ts';
import { actorName, settle, settledCheck, type Settled } from '../settled-memory.ts';
import type { Topology } from '../topology.ts';
import type { Scenario, ScenarioContext } from './scenario.ts';

/** Offered load over the measured capacity (issue 11). */
export const OVERLOAD_FACTOR = 10;
/** Overload rounds whose peaks are compared. */
export const ROUNDS = 3;
/** Capacity measurement and round length, per profile: the scenario stays under 60 s / 2 min. */
const MEASURE_MS = { short: 4_000, full: 6_000 } as const;
const ROUND_MS = { short: 5_000, full: 10_000 } as const;
/** Pause after a round's last answer, so the next round starts on empty queues. */
const ROUND_GAP_MS = 1_000;
/** After the rounds: a light closed loop must complete every request (the cluster recovered). */
const AFTER_MS = 2_000;
const AFTER_CONCURRENCY = 2;
/** Share of the flood sent over NATS with the client library, so its `busy` is checked too. */
const NATS_SHARE = 0.1;
/** Most requests the flood keeps open: far above what the cluster admits, so never the limit. */
const MAX_OUTSTANDING = 4_000;
/** Highest arrival rate the flood is asked for, whatever the measurement says (one process). */
const MAX_RATE_PER_S = 1_500;
/**
 * "Flat" peak RSS of the processes the memory probe cannot reach (nats-server, in Go): round 3's
 * peak at most round 1's × 1.1 plus 16 MiB. Node actors are judged on settled memory instead
 * (settled-memory.ts): their peak in a burst is V8 sizing its heap, not memory kept.
 */
const RSS_GROWTH_FACTOR = 1.1;
const RSS_SLACK_KIB = 16 * 1024;
/**
 * A folder to write heap snapshots of the bridges to after rounds 1 and 3 (diagnosis:
 * `tsx chaos/heap-diff.ts A B` compares two). Unset: none (a snapshot costs the bridge ~80 MiB
 * of native memory that stays resident).
 */
export const HEAP_SNAPSHOT_DIR_ENV = 'CHAOS_HEAP_SNAPSHOT_DIR';

/** The codes a flood request may end with: completed, or refused as overloaded. */
const HTTP_OK = new Set(['200', '429']);
const NATS_OK = new Set(['ok', 'busy']);

function watchedActors(topology: Topology): Watched[] {
  const actors = [...topology.routers, ...topology.replicas, ...topology.bridges].flatMap((a) =>
    a.child.pid === undefined ? [] : [{ name: `${a.role} ${a.id}`, pid: a.child.pid }],
  );
  const nodes = topology.nats.nodes.flatMap((n, i) =>
    n.pid === undefined ? [] : [{ name: `nats n${i + 1}`, pid: n.pid }],
  );
  return [...actors, ...nodes];
}

/** Each bridge's event-loop delay p99 since the previous scrape (a scrape resets it), ms. */
async function bridgeLoopDelays(bridges: string[]): Promise<string> {
  const each = await Promise.all(
    bridges.map(async (b) => {
      try {
        const text = await (await fetch(new URL('/metrics', b))).text();
        const m = /^switchyard_event_loop_delay_seconds(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text);
        return m === null ? '?' : (Number(m[1]) * 1000).toFixed(0);
      } catch (err) {
        return `unreadable (${err instanceof Error ? err.message : String(err)})`;
      }
    }),
  );
  return `bridge loop delay p99 ${each.join(', ')} ms`;
}

function counts(c: Record<string, number>): string {
  const parts = Object.entries(c).map(([k, v]) => `${k}: ${v}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

function describe(s: FloodStats): string {
  return (
    `sent ${s.sent} in ${(s.elapsedMs / 1000).toFixed(1)} s (${s.notSent} not sent at the flood's cap); ` +
    `HTTP {${counts(s.httpStatus)}}; NATS {${counts(s.natsCodes)}}; transport {${counts(s.transportErrors)}}; ` +
    `hung ${s.hung}; 429 without Retry-After ${s.missingRetryAfter}; completed ${s.completed} ` +
    `(${s.different} different), ${s.completedPerS.toFixed(1)} req/s, ${s.tokensPerS.toFixed(0)} tok/s; ` +
    `refused in p50 ${s.refusalMs.p50} / p99 ${s.refusalMs.p99} / max ${s.refusalMs.max} ms; ` +
    `flood loop delay p99 ${s.floodLoopDelayP99Ms.toFixed(0)} ms`
  );
}

function refused(s: FloodStats): number {
  return (s.httpStatus['429'] ?? 0) + (s.natsCodes['busy'] ?? 0);
}

/** The round's invariant: only 200 / 429+Retry-After / busy, nothing hung, every completion exact. */
function roundCheck(round: number, s: FloodStats, ratePerS: number): InvariantCheck {
  const badHttp = Object.keys(s.httpStatus).filter((k) => !HTTP_OK.has(k));
  const badNats = Object.keys(s.natsCodes).filter((k) => !NATS_OK.has(k));
  const ok =
    badHttp.length === 0 &&
    badNats.length === 0 &&
    Object.keys(s.transportErrors).length === 0 &&
    s.hung === 0 &&
    s.missingRetryAfter === 0 &&
    s.different === 0 &&
    refused(s) > 0;
  return {
    name: `overload round ${round}: refusals are 429 + Retry-After or busy; no 5xx, none lost or hung`,
    ok,
    detail: `offered ${ratePerS.toFixed(0)} req/s open-loop; ${describe(s)}${refused(s) === 0 ? '; nothing was refused: not overloaded' : ''}`,
  };
}

/**
 * Round 3's peaks against round 1's for the processes not in `probed` (nats-server); every
 * watched process's peaks are in the detail.
 */
function rssCheck(
  rounds: Array<Map<string, RssPeak>>,
  watched: Watched[],
  probed: ReadonlySet<string>,
): InvariantCheck {
  const first = rounds[0]!;
  const last = rounds[rounds.length - 1]!;
  const grown: string[] = [];
  const figures = watched.map((w) => {
    const series = rounds.map((r) => r.get(w.name));
    const a = first.get(w.name);
    const z = last.get(w.name);
    const limit = (kib: number): number => kib * RSS_GROWTH_FACTOR + RSS_SLACK_KIB;
    if (probed.has(w.name)) {
      // judged by settledCheck
    } else if (a === undefined || z === undefined) grown.push(`${w.name} (gone)`);
    else if (z.peakRssKiB > limit(a.peakRssKiB) || z.hwmKiB > limit(a.hwmKiB)) grown.push(w.name);
    const peaks = series.map((p) => (p === undefined ? '-' : mib(p.peakRssKiB))).join('/');
    const hwm = series.map((p) => (p === undefined ? '-' : mib(p.hwmKiB))).join('/');
    const cpu = series.map((p) => (p === undefined ? '-' : `${(p.cpuCores * 100).toFixed(0)}%`)).join('/');
    return `${w.name} ${peaks} (HWM ${hwm}; CPU ${cpu})`;
  });
  return {
    name: `overload: every NATS node's peak RSS flat across ${ROUNDS} rounds (round ${ROUNDS} ≤ round 1 × ${RSS_GROWTH_FACTOR} + ${RSS_SLACK_KIB / 1024} MiB); the actors' peaks for the record`,
    ok: grown.length === 0,
    detail: `peak VmRSS per round, MiB (and VmHWM, CPU share of one core): ${figures.join('; ')}${grown.length > 0 ? `; grew: ${grown.join(', ')}` : ''}`,
  };
}

async function overloadRun(topology: Topology, ctx: ScenarioContext): Promise<void> {
  const profile = ctx.profile.name;
  // The regular load's requests: capacity is measured, and exceeded, on the same work.
  const items = await withReferences(loadRequests(ctx.profile.maxTokens));
  const urls = topology.natsUrls;
  const bridges = topology.bridges.map((b) => b.url ?? '');
  if (bridges.some((u) => u === '')) throw new Error('a bridge reported no URL');
  const flood = await FloodClient.start({
    bridges,
    nats: { servers: [...urls.slice(-1), ...urls.slice(0, -1)], nkeySeedFile: topology.client.seedFile },
    items,
    timeoutMs: ctx.profile.timeoutMs,
    maxOutstanding: MAX_OUTSTANDING,
  });
  try {
    // Capacity: every replica's batch full, no queue beyond it (saturating, not overloading).
    const concurrency = topology.replicas.length * DEFAULT_MAX_BATCH_SIZE;
    const measured = await flood.phase({
      name: 'capacity',
      mode: { kind: 'closed', concurrency },
      durationMs: MEASURE_MS[profile],
      natsShare: 0,
    });
    ctx.check({
      name: 'overload: capacity measured through the bridges',
      ok: measured.completed > 0 && measured.different === 0,
      detail: `closed loop of ${concurrency} (replicas × max batch ${DEFAULT_MAX_BATCH_SIZE}), ${ctx.profile.maxTokens} tokens each: ${describe(measured)}`,
    });
    if (measured.completed === 0) return;
    // Open loop: arrivals do not wait for answers, so fast refusals cannot slow the offered load.
    const ratePerS = Math.min(measured.completedPerS * OVERLOAD_FACTOR, MAX_RATE_PER_S);
    const watched = watchedActors(topology);
    const peaks: Array<Map<string, RssPeak>> = [];
    // Node actors are measured after a full GC at each round's end (settled-memory.ts).
    const probed = [...topology.routers, ...topology.replicas, ...topology.bridges];
    const settled: Array<Map<string, Settled>> = [];
    const snapshotDir = process.env[HEAP_SNAPSHOT_DIR_ENV];
    const snapshots =
      snapshotDir === undefined || snapshotDir === ''
        ? undefined
        : { dir: snapshotDir, of: (a: ActorProcess) => a.role === 'bridge' };
    for (let round = 1; round <= ROUNDS; round++) {
      const record = ctx.fault({
        name: `overload round ${round}`,
        target: `${bridges.length} bridge(s) + NATS (${NATS_SHARE * 100}%) at ${ratePerS.toFixed(0)} req/s`,
        startedAt: Date.now(),
      });
      await bridgeLoopDelays(bridges);
      const window = new RssWindow(watched);
      const stats = await flood.phase({
        name: `round ${round}`,
        mode: { kind: 'open', ratePerS },
        durationMs: ROUND_MS[profile],
        natsShare: NATS_SHARE,
      });
      peaks.push(window.stop());
      Object.assign(record, { endedAt: Date.now() });
      if (refused(stats) > 0)
        record.verified = `${refused(stats)} of ${stats.sent} refused as overloaded (429 / busy)`;
      const check = roundCheck(round, stats, ratePerS);
      ctx.check({ ...check, detail: `${check.detail}; ${await bridgeLoopDelays(bridges)}` });
      await new Promise((r) => setTimeout(r, ROUND_GAP_MS));
      settled.push(await settle(probed, round, snapshots));
    }
    ctx.check(settledCheck(probed.map(actorName), settled, peaks));
    ctx.check(rssCheck(peaks, watched, new Set(probed.map(actorName))));
    const after = await flood.phase({
      name: 'after',
      mode: { kind: 'closed', concurrency: AFTER_CONCURRENCY },
      durationMs: AFTER_MS,
      natsShare: 0.5,
    });
    ctx.check({
      name: 'overload: after the rounds every light request completes exactly',
      ok: after.completed === after.sent && after.different === 0 && after.completed > 0,
      detail: describe(after),
    });
    const dead = [...topology.routers, ...topology.replicas, ...topology.bridges].filter(
      (a) => a.child.exitCode !== null || a.child.signalCode !== null,
    );
    ctx.check({
      name: 'overload: no actor exited',
      ok: dead.length === 0,
      detail: dead.length === 0 ? 'all alive' : dead.map((a) => `${a.role} ${a.id}`).join(', '),
    });
  } finally {
    flood.stop();
  }
}

export const overload: Scenario = {
  name: 'overload',
  invariant: `At ${OVERLOAD_FACTOR}× the measured capacity, for ${ROUNDS} rounds, the excess is refused with 429 + Retry-After (busy over NATS), never 5xx; nothing is lost or hung, every completion is exact, and no actor keeps memory from round to round (live heap and RSS after a full GC at each round's end; NATS nodes' peak RSS).`,
  // The regular load shares the overloaded cluster: the client library hands `busy` to its caller.
  allowedErrors: ['busy'],
  // Not in `npm test`: on the shared 2-core machine its round 1 and RSS checks are not yet robust.
  short: false,
  run: overloadRun,
};
