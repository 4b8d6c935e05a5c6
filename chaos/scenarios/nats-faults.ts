/**
 * What the NATS-node and network scenarios share: checks that a fault on a node really happened
 * or really healed (routes back, actors reconnected), the no-responders check, and a probe that
 * measures how long a connection with the actors' ping budget takes to notice a dead server.
 */
import { RequestError } from '@nats-io/nats-core';
import { connectNats, DEFAULT_MAX_PING_OUT, DEFAULT_PING_INTERVAL_MS } from '../../src/cluster/connection.ts';
import type { NatsNode } from '../nats-cluster.ts';
import type { Topology } from '../topology.ts';
import type { ScenarioContext } from './scenario.ts';

/** Polling interval and limit for routes to re-form and actors to reconnect after a heal. */
const POLL_MS = 100;
export const HEAL_TIMEOUT_MS = 15_000;
/** A request nobody serves must fail this fast (nats-server answers 503 at once); its timeout is longer. */
const NO_RESPONDERS_BUDGET_MS = 1_000;
const NO_RESPONDERS_TIMEOUT_MS = 5_000;
/** The ping budget the actors run with (connection.ts): a silent server is noticed after about this. */
export const PING_BUDGET_MS = DEFAULT_PING_INTERVAL_MS * DEFAULT_MAX_PING_OUT;
/** How long the detection probe waits before it reports that nothing was detected. */
const DETECT_TIMEOUT_MS = 30_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` resolves true, polling; false after `timeoutMs`. */
export async function until(check: () => Promise<boolean>, timeoutMs = HEAL_TIMEOUT_MS): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

/** Picks, with the seeded random, a node that at least one router or replica is connected to. */
export function pickActorNode(topology: Topology, ctx: ScenarioContext): number {
  const used = [...new Set([...topology.routers, ...topology.replicas].map((a) => topology.nodeOf(a)))]
    .filter((i) => i >= 0)
    .sort();
  const i = used[Math.floor(ctx.random() * used.length)];
  if (i === undefined) throw new Error('no NATS node has a router or replica on it');
  return i;
}

/** Which actors started on node i (for fault targets: "n1 (router rt1, replica rp1)"). */
export function describeNode(topology: Topology, i: number): string {
  const node = topology.nats.nodes[i]!;
  const on = [...topology.routers, ...topology.replicas, ...topology.bridges]
    .filter((a) => topology.nodeOf(a) === i)
    .map((a) => `${a.role} ${a.id}`);
  return `NATS node ${node.name} (pid ${node.pid ?? '?'}; ${on.join(', ') || 'no actors'})`;
}

/** The connection names every node reports (its monitoring `/connz`); nodes that do not answer add none. */
export async function connectionNames(nodes: readonly NatsNode[]): Promise<Set<string>> {
  const names = new Set<string>();
  for (const node of nodes) {
    try {
      const res = await fetch(`http://${node.address.host}:${node.address.monitorPort}/connz?limit=4096`, {
        signal: AbortSignal.timeout(1_000),
      });
      const body = (await res.json()) as { connections?: { name?: string }[] };
      for (const c of body.connections ?? []) if (c.name !== undefined) names.add(c.name);
    } catch {
      // A partitioned or dead node: its connections count as gone.
    }
  }
  return names;
}

/** Records whether every router and replica is connected to some node again. */
export async function checkActorsReconnected(topology: Topology, ctx: ScenarioContext): Promise<void> {
  const wanted = [...topology.routers, ...topology.replicas].map((a) => `${a.role}-${a.id}`);
  let missing: string[] = wanted;
  const started = Date.now();
  await until(async () => {
    const names = await connectionNames(topology.nats.nodes);
    missing = wanted.filter((w) => !names.has(w));
    return missing.length === 0;
  });
  ctx.check({
    name: 'actors reconnected',
    ok: missing.length === 0,
    detail:
      missing.length === 0
        ? `every router and replica is connected to a node (${Date.now() - started} ms after the heal)`
        : `not connected to any node ${HEAL_TIMEOUT_MS} ms after the heal: ${missing.join(', ')}`,
  });
}

/** Records whether every node has routes to all the others again (its `/routez`). */
export async function checkRoutesFormed(topology: Topology, ctx: ScenarioContext): Promise<string> {
  const nodes = topology.nats.nodes;
  const want = nodes.length - 1;
  let counts: (number | undefined)[] = [];
  const started = Date.now();
  const ok = await until(async () => {
    counts = await Promise.all(nodes.map((n) => n.routeCount()));
    return counts.every((c) => c !== undefined && c >= want);
  });
  const detail = `routes per node ${nodes.map((n, i) => `${n.name}=${counts[i] ?? 'no answer'}`).join(' ')}`;
  ctx.check({
    name: 'routes re-formed',
    ok,
    detail: ok ? `${detail} (${Date.now() - started} ms after the heal)` : `${detail}, want ${want} each`,
  });
  return detail;
}

/**
 * Records whether a request to a subject nobody serves fails fast with no-responders on `url`
 * (nats-server answers a 503 status at once; the client library turns it into a
 * `RequestError` with `isNoResponders()`), rather than waiting out its timeout.
 */
export async function checkNoRespondersFast(
  url: string,
  topology: Topology,
  ctx: ScenarioContext,
): Promise<void> {
  const nc = await connectNats({
    servers: url,
    nkeySeedFile: topology.operator.seedFile,
    name: 'chaos-probe',
  });
  const started = Date.now();
  let detail: string;
  let ok = false;
  try {
    await nc.request(`chaos.nobody.${process.pid}`, '', { timeout: NO_RESPONDERS_TIMEOUT_MS });
    detail = 'a request to a subject nobody serves got a reply';
  } catch (err) {
    const ms = Date.now() - started;
    const noResponders = err instanceof RequestError && err.isNoResponders();
    ok = noResponders && ms <= NO_RESPONDERS_BUDGET_MS;
    detail = `${noResponders ? 'no responders' : String(err)} after ${ms} ms on ${url} (budget ${NO_RESPONDERS_BUDGET_MS} ms, timeout ${NO_RESPONDERS_TIMEOUT_MS} ms)`;
  } finally {
    await nc.close();
  }
  ctx.check({ name: 'no-responders fails fast', ok, detail });
}

/**
 * A connection to `url` with the actors' ping budget; `detected()` resolves with the ms from
 * `since()` until the client library declared the server gone (stale connection or disconnect).
 */
export async function detectionProbe(
  url: string,
  topology: Topology,
): Promise<{ mark(): void; detected(): Promise<number | undefined>; close(): Promise<void> }> {
  const nc = await connectNats({
    servers: url,
    nkeySeedFile: topology.operator.seedFile,
    name: 'chaos-detect',
  });
  let markedAt = 0;
  let detectedAt: number | undefined;
  void (async () => {
    for await (const s of nc.status()) {
      if (
        markedAt > 0 &&
        detectedAt === undefined &&
        (s.type === 'staleConnection' || s.type === 'disconnect')
      )
        detectedAt = Date.now();
    }
  })();
  return {
    mark: () => void (markedAt = Date.now()),
    detected: async () => {
      await until(() => Promise.resolve(detectedAt !== undefined), DETECT_TIMEOUT_MS);
      return detectedAt === undefined ? undefined : detectedAt - markedAt;
    },
    close: () => nc.close(),
  };
}
