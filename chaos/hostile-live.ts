/**
 * Hostile traffic aimed at the live request path, for a sender that may subscribe widely (the
 * operator credential, or anyone on an insecure cluster): a fake replica whose heartbeats copy a
 * real one's and attract requests it then swallows, forged chunks injected into live reply
 * streams, and forged heartbeats of real actors. Each returns what it did, for the check details.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { HEADERS } from '../src/cluster/headers.ts';
import {
  decodeReplicaHeartbeat,
  encodeReplicaHeartbeat,
  encodeRouterHeartbeat,
} from '../src/cluster/messages/heartbeat.ts';
import {
  ALL_REPLICA_HEARTBEATS,
  GENERATE_SUBJECT,
  ROUTER_QUEUE_GROUP,
  replicaGenerateSubject,
  replicaHeartbeatSubject,
  routerHeartbeatSubject,
} from '../src/cluster/subjects.ts';
import { forged } from './hostile.ts';

/** How long the fake replica announces itself. */
export const FAKE_REPLICA_MS = 3_000;
/** The fake replica's id: no process serves it. */
export const FAKE_REPLICA_ID = 'rp-hostile';
/** How long a real heartbeat may take to arrive (to clone it). */
const REAL_BEAT_TIMEOUT_MS = 5_000;
/** How many live streams get one forged message each. */
const INJECTED_STREAMS = 3;
/** How long the injector watches inboxes for live streams. */
const INJECT_WINDOW_MS = 4_000;

/**
 * Announces a replica that does not exist, with the model and version of a real one and an empty
 * queue (the most attractive target), and swallows every request routed to it: the routers must
 * notice the silence (ack timeout) and fail over. Returns how many attempts it attracted.
 */
export async function fakeReplica(nc: NatsConnection): Promise<{ attracted: number; cloned: string }> {
  const real = await firstRealBeat(nc, ALL_REPLICA_HEARTBEATS, 'no real replica heartbeat to clone');
  let attracted = 0;
  const swallow = nc.subscribe(replicaGenerateSubject(FAKE_REPLICA_ID), {
    callback: () => {
      attracted++;
    },
  });
  await nc.flush();
  const beat = (): void =>
    nc.publish(
      replicaHeartbeatSubject(FAKE_REPLICA_ID),
      encodeReplicaHeartbeat({
        ...real,
        id: FAKE_REPLICA_ID,
        state: 'ready',
        queueDepth: 0,
        activeSequences: 0,
        freeTokenBudget: real.tokenBudget,
        busySince: null,
        stepStartedAt: null,
        stepTokens: 0,
        sentAt: Date.now(),
      }),
    );
  beat();
  const timer = setInterval(beat, real.intervalMs);
  await new Promise((r) => setTimeout(r, FAKE_REPLICA_MS));
  clearInterval(timer);
  // Keep swallowing until routers have declared it dead, so the attracted count is whole.
  await new Promise((r) => setTimeout(r, real.intervalMs * 5));
  swallow.unsubscribe();
  return { attracted, cloned: `${real.id} (${real.model} ${real.modelVersion})` };
}

/**
 * Watches the inboxes of `role` and publishes one forged chunk (a seq far ahead, tokens the
 * stream never had) into each of the first few live streams: a receiver must treat it as the
 * protocol violation it is (fail over, resend), never pass its tokens on.
 */
export async function injectIntoStreams(nc: NatsConnection, role: 'router' | 'client'): Promise<string[]> {
  const hit = new Set<string>();
  const sub = nc.subscribe(`_INBOX_${role}.>`, {
    callback: (err, msg) => {
      if (err || hit.size >= INJECTED_STREAMS || hit.has(msg.subject)) return;
      if (msg.headers?.get(HEADERS.kind) !== 'chunk') return;
      hit.add(msg.subject);
      nc.publish(
        msg.subject,
        JSON.stringify({ seq: 9_999, attempt: 1, token_ids: [50_000], text: 'FORGED' }),
        {
          headers: forged({
            [HEADERS.kind]: 'chunk',
            [HEADERS.requestId]: msg.headers.get(HEADERS.requestId),
          }),
        },
      );
    },
  });
  await new Promise((r) => setTimeout(r, INJECT_WINDOW_MS));
  sub.unsubscribe();
  return [...hit];
}

/** Publishes one forged `stopped` heartbeat in a real router's name (replicas drop its work as orphans). */
export function forgeRouterStopped(nc: NatsConnection, routerId: string): void {
  nc.publish(
    routerHeartbeatSubject(routerId),
    encodeRouterHeartbeat({
      id: routerId,
      state: 'stopped',
      inFlight: 0,
      sentAt: Date.now(),
      intervalMs: 500,
    }),
  );
}

/** How long the hijacker sits in the routers' queue group (shorter than a client's ack timeout). */
export const HIJACK_MS = 2_000;

/**
 * Joins the routers' queue group on the front door and swallows what it is dealt for
 * {@link HIJACK_MS}: clients see no ack and resend (to a real router, once the hijacker left).
 * Returns how many requests it took.
 */
export async function hijackFrontDoor(nc: NatsConnection): Promise<number> {
  let taken = 0;
  const sub = nc.subscribe(GENERATE_SUBJECT, {
    queue: ROUTER_QUEUE_GROUP,
    callback: () => {
      taken++;
    },
  });
  await new Promise((r) => setTimeout(r, HIJACK_MS));
  sub.unsubscribe();
  return taken;
}

/**
 * Publishes one forged heartbeat in a real replica's name that says it is stuck (busy for a
 * minute, progress 0): routers may declare it dead and fail its requests over until its next
 * real beat. Returns the state forged.
 */
export async function forgeReplicaStuck(nc: NatsConnection, replicaId: string): Promise<string> {
  const real = await firstRealBeat(nc, replicaHeartbeatSubject(replicaId), `no heartbeat of ${replicaId}`);
  const now = Date.now();
  nc.publish(
    replicaHeartbeatSubject(replicaId),
    encodeReplicaHeartbeat({
      ...real,
      progress: 0,
      busySince: now - STUCK_FOR_MS,
      activeSequences: 1,
      sentAt: now,
    }),
  );
  return `busy since ${STUCK_FOR_MS} ms ago, progress 0 (real progress ${real.progress})`;
}

/** How long ago the forged stuck heartbeat says the replica became busy. */
const STUCK_FOR_MS = 60_000;

/** The first heartbeat on `subject` that decodes (hostile senders' garbage is skipped). */
function firstRealBeat(
  nc: NatsConnection,
  subject: string,
  missing: string,
): Promise<ReturnType<typeof decodeReplicaHeartbeat>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(missing)), REAL_BEAT_TIMEOUT_MS);
    const sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          const hb = decodeReplicaHeartbeat(msg.data);
          clearTimeout(timer);
          sub.unsubscribe();
          resolve(hb);
        } catch {
          // Another hostile sender's garbage: wait for a real one.
        }
      },
    });
  });
}
