/**
 * hot-swap: a rollout under load, the product way. Replicas start from
 * `registry://tiny-gpt2@stable` (the topology stored both bundled versions); the operator moves
 * `stable` from version 1 to 2, every replica follows the alias on its own and hot swaps (loads
 * 2 beside 1, warms it, gives it new requests, releases 1 once its requests end); then, while
 * the load still runs (the full profile), `stable` moves back to 1 the same way. The faults are verified from the replicas' heartbeats (every one
 * reports the new version, then no longer lists the old one as retiring). Nothing a client sees
 * may break: no error, nothing cut, every request exact against the reference of the version it
 * was pinned to and completed on (the checker), and both versions served requests.
 */
import { STABLE_ALIAS } from '../../src/cli/up.ts';
import { Registry } from '../../src/registry/registry.ts';
import { HeartbeatWatch, type Beat } from '../heartbeats.ts';
import type { Operation } from '../history/types.ts';
import { LoadEndedError } from '../load.ts';
import { nextStreamWithin, sleep, withOperator } from './operator.ts';
import type { Scenario } from './scenario.ts';

/** How long to wait for a stream to land the alias move on (the load may already be over). */
const STREAM_WAIT_MS = 5_000;
/** How long every replica has to report the new version after the alias moved. */
const CONVERGE_TIMEOUT_MS = 30_000;
/**
 * How long every replica has to release the retired version once it serves the new one: its
 * grace period (2 s at the 200 ms heartbeat) plus the longest request still running on it.
 */
const RELEASE_TIMEOUT_MS = 60_000;
/** How often the scenario looks at the heartbeats. */
const POLL_MS = 50;
/**
 * The share of the load's duration the new version serves alone, once every replica released
 * the old one, before the alias moves back.
 */
const SERVE_SHARE = 0.15;

/** Who the alias history says moved `stable`. */
const ACTOR = 'chaos hot-swap';

/** Resolves with the ms it took `ok` to hold, or undefined when it did not within `ms`. */
async function within(ms: number, ok: () => boolean): Promise<number | undefined> {
  const start = Date.now();
  while (!ok()) {
    if (Date.now() - start > ms) return undefined;
    await sleep(POLL_MS);
  }
  return Date.now() - start;
}

/** The version an operation completed on, where the history says. */
function completedOn(op: Operation): string | undefined {
  return op.outcome.kind === 'ok' ? op.outcome.modelVersion : undefined;
}

export const hotSwap: Scenario = {
  name: 'hot-swap',
  invariant:
    'The operator moves the `stable` alias from version 1 to 2 under load, then back to 1; every replica follows it and hot swaps (heartbeats: new version served, old one released). No error is allowed, nothing is cut, every request completes exactly on the version it was pinned to (the reference of that version), and both versions served requests.',
  allowedErrors: [],
  // About 30 s on 2 replicas (the move back needs the full profile's longer load).
  short: true,
  shape: { modelRegistry: true },
  async run(topology, ctx) {
    const models = topology.models;
    if (models === undefined) throw new Error('hot-swap needs a topology started from the registry');
    const [first, second] = models.versions;
    if (first === undefined || second === undefined)
      throw new Error(`hot-swap needs two stored versions, the topology has ${models.versions.join(', ')}`);
    await withOperator(topology, async (nc) => {
      const registry = await Registry.open(nc, { create: false });
      const watches = topology.replicas.map((r) => new HeartbeatWatch(nc, r.id));
      const serving = (w: HeartbeatWatch): string | undefined => w.last?.modelVersion;
      try {
        const ready = await within(CONVERGE_TIMEOUT_MS, () => watches.every((w) => serving(w) === first));
        ctx.check({
          name: `every replica serves ${models.id}@${first} from the registry before the swap`,
          ok: ready !== undefined,
          detail: watches.map((w) => `${w.replicaId}: ${serving(w) ?? 'no heartbeat'}`).join(', '),
        });
        const moves: Array<[string, string]> = [
          [first, second],
          [second, first],
        ];
        for (const [k, [from, to]] of moves.entries()) {
          if (k > 0 && ctx.load.over) {
            // The short profile's load is over by now: a move back would prove nothing about requests.
            ctx.check({
              name: `the move back ${from} → ${to}`,
              ok: true,
              detail: 'not made: the load was over before it (the full profile makes it under load)',
            });
            break;
          }
          const underLoad = await nextStreamWithin(ctx, STREAM_WAIT_MS).catch((err: unknown) => {
            if (err instanceof LoadEndedError) return false;
            throw err;
          });
          const startedAt = Date.now();
          const record = ctx.fault({
            name: 'alias move (hot swap)',
            target: `${models.id}@${STABLE_ALIAS}: ${from} → ${to}, followed by ${watches.map((w) => w.replicaId).join(', ')}${underLoad ? '' : ' (after the load)'}`,
            startedAt,
          });
          await registry.alias(models.id, STABLE_ALIAS, to, {
            by: ACTOR,
            reason: `chaos: hot swap under load, ${from} → ${to}`,
          });
          // Per replica: when its heartbeats first reported the new version, and released the old.
          const swappedAt = new Map<string, number>();
          const releasedAt = new Map<string, number>();
          const note = (): void => {
            for (const w of watches) {
              const beat: Beat | undefined = w.last;
              if (beat === undefined || beat.at < startedAt || beat.modelVersion !== to) continue;
              if (!swappedAt.has(w.replicaId)) swappedAt.set(w.replicaId, beat.at);
              if (!beat.retiringVersions.includes(from) && !releasedAt.has(w.replicaId))
                releasedAt.set(w.replicaId, beat.at);
            }
          };
          const converged = await within(CONVERGE_TIMEOUT_MS, () => {
            note();
            return swappedAt.size === watches.length;
          });
          const released = await within(RELEASE_TIMEOUT_MS, () => {
            note();
            return releasedAt.size === watches.length;
          });
          const times = (m: Map<string, number>): string =>
            watches
              .map(
                (w) =>
                  `${w.replicaId} ${m.has(w.replicaId) ? `${m.get(w.replicaId)! - startedAt} ms` : 'never'}`,
              )
              .join(', ');
          const errors = watches
            .map((w) => w.beats.find((b) => b.at >= startedAt && b.swapError !== undefined))
            .filter((b): b is Beat => b !== undefined)
            .map((b) => b.swapError);
          if (converged !== undefined && released !== undefined) {
            record.verified =
              `every replica's heartbeats report version ${to} (${times(swappedAt)} after the move) ` +
              `and no longer list ${from} as retiring (released: ${times(releasedAt)})`;
          } else {
            ctx.check({
              name: `every replica swapped ${from} → ${to} and released ${from}`,
              ok: false,
              detail: `serving ${to}: ${times(swappedAt)}; released ${from}: ${times(releasedAt)}${errors.length > 0 ? `; swap errors: ${errors.join('; ')}` : ''}`,
            });
          }
          record.endedAt = Date.now();
          // The new version serves alone a while before the alias moves back.
          if (k === 0) await sleep(ctx.profile.durationMs * SERVE_SHARE);
        }
      } finally {
        for (const w of watches) w.close();
      }
    });
    // The load is over: which versions completed requests, through which door.
    const operations = await ctx.load.done.catch(() => undefined);
    if (operations === undefined) return; // the runner reports the load's failure
    const byVersion = new Map<string, { nats: number; http: number }>();
    for (const op of operations) {
      const version = completedOn(op) ?? 'unnamed';
      const n = byVersion.get(version) ?? { nats: 0, http: 0 };
      if (op.via === 'nats') n.nats++;
      else n.http++;
      byVersion.set(version, n);
    }
    const served = (v: string): number => (byVersion.get(v)?.nats ?? 0) + (byVersion.get(v)?.http ?? 0);
    ctx.check({
      name: `both versions (${first}, ${second}) completed requests`,
      ok: served(first) > 0 && served(second) > 0,
      detail: [...byVersion.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([v, n]) => `version ${v}: ${n.nats} over NATS, ${n.http} over HTTP`)
        .join('; '),
    });
  },
};
