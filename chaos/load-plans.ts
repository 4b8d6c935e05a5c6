/**
 * The load clients of a scenario: NATS clients preferring different nodes (routers and replicas
 * sit on the first ones, so their traffic crosses routes) and one HTTP client per bridge, sharing
 * the profile's request count between them; each runs for the profile's duration.
 */
import type { LoadItem, LoadPlan } from './load-protocol.ts';
import type { Profile } from './profile.ts';
import { itemsFor } from './references.ts';
import type { Topology } from './topology.ts';

/** NATS load clients per scenario. */
export const NATS_LOAD_CLIENTS = 2;

/** `total` split over `n` shares, the remainder on the first ones. */
export function shares(total: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

/** The plans of every load client for `topology`. */
export function loadPlans(topology: Topology, profile: Profile, items: readonly LoadItem[]): LoadPlan[] {
  const urls = topology.natsUrls;
  // NATS client i prefers the i-th node from the end.
  const preferring = (i: number): string[] => {
    const first = (urls.length - 1 - (i % urls.length) + urls.length) % urls.length;
    return [...urls.slice(first), ...urls.slice(0, first)];
  };
  const bridgeUrls = topology.bridges.map((b) => {
    if (b.url === undefined) throw new Error(`bridge ${b.id} reported no URL`);
    return b.url;
  });
  const counts = shares(profile.count, NATS_LOAD_CLIENTS + bridgeUrls.length);
  const common = {
    nkeySeedFile: topology.client.seedFile,
    durationMs: profile.durationMs,
    concurrency: profile.concurrency,
    timeoutMs: profile.timeoutMs,
  };
  const nats = Array.from({ length: NATS_LOAD_CLIENTS }, (_, i): LoadPlan => ({
    ...common,
    client: `nats${i + 1}`,
    servers: preferring(i),
    items: itemsFor(items, 'nats'),
    count: counts[i] ?? 0,
  }));
  const http = bridgeUrls.map((url, i): LoadPlan => ({
    ...common,
    client: `http${i + 1}`,
    bridgeUrl: url,
    servers: urls,
    items: itemsFor(items, 'http'),
    count: counts[NATS_LOAD_CLIENTS + i] ?? 0,
  }));
  return [...nats, ...http];
}
