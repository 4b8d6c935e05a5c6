/** The replica's orphan watch, fed router heartbeats directly with explicit clocks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { MAX_MEMBERS } from '../../src/cluster/heartbeat-monitor.ts';
import { encodeRouterHeartbeat, type RouterHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { routerHeartbeatSubject } from '../../src/cluster/subjects.ts';
import { ORPHAN_AFTER_MISSED, OrphanWatch } from '../../src/replica/orphans.ts';

const TIMEOUT = 400;
const CHECK = 100; // TIMEOUT / 4

/** The watch is driven through receive() and check(): start() and its connection are never used. */
const NO_NATS = undefined as unknown as NatsConnection;

function watch(): { w: OrphanWatch; gone: string[] } {
  const gone: string[] = [];
  return { w: new OrphanWatch(NO_NATS, TIMEOUT, (id) => gone.push(id)), gone };
}

function beat(id: string, over: Partial<RouterHeartbeat> = {}): Uint8Array {
  return encodeRouterHeartbeat({ id, state: 'ready', inFlight: 1, sentAt: 0, intervalMs: 50, ...over });
}

/** Checks every CHECK ms after `from` up to `to`. */
function checkThrough(w: OrphanWatch, from: number, to: number): void {
  for (let t = from + CHECK; t <= to; t += CHECK) w.check(t);
}

describe('OrphanWatch', () => {
  it('reports a router silent past the timeout once, and one that stopped at once', () => {
    const { w, gone } = watch();
    w.receive(routerHeartbeatSubject('a'), beat('a'), 0);
    w.receive(routerHeartbeatSubject('b'), beat('b'), 0);
    w.receive(routerHeartbeatSubject('b'), beat('b', { state: 'stopped' }), 10);
    assert.deepEqual(gone, ['b']);
    checkThrough(w, 0, TIMEOUT);
    assert.deepEqual(gone, ['b']);
    checkThrough(w, TIMEOUT, 2 * TIMEOUT);
    assert.deepEqual(gone, ['b', 'a']);
  });

  it('ignores heartbeats whose subject names another router than their body', () => {
    const { w, gone } = watch();
    w.track('a', 0);
    // A forged `stopped` for a, on another subject: a's requests are not cancelled.
    w.receive(routerHeartbeatSubject('evil'), beat('a', { state: 'stopped' }), 10);
    assert.deepEqual(gone, []);
    // Forged beats for a do not keep it alive either.
    for (let t = CHECK; t <= TIMEOUT + CHECK; t += CHECK) {
      w.receive(routerHeartbeatSubject('evil'), beat('a'), t);
      w.check(t);
    }
    assert.deepEqual(gone, ['a']);
  });

  it('a check that ran late (the replica stalled) cancels nothing; the queued beats count first', () => {
    const { w, gone } = watch();
    w.receive(routerHeartbeatSubject('a'), beat('a'), 0);
    w.check(CHECK);
    w.check(3_000);
    assert.deepEqual(gone, [], 'late check: no verdict');
    w.receive(routerHeartbeatSubject('a'), beat('a'), 3_001);
    w.check(3_000 + CHECK);
    assert.deepEqual(gone, []);
  });

  it(`waits ${ORPHAN_AFTER_MISSED} of a slow router's own intervals when they exceed the timeout`, () => {
    const { w, gone } = watch();
    w.receive(routerHeartbeatSubject('slow'), beat('slow', { intervalMs: 1_000 }), 0);
    checkThrough(w, 0, 3_000);
    assert.deepEqual(gone, []);
    checkThrough(w, 3_000, 3_100);
    assert.deepEqual(gone, ['slow']);
  });

  it(`tracks at most ${MAX_MEMBERS} routers`, () => {
    const { w, gone } = watch();
    for (let i = 0; i < MAX_MEMBERS + 5; i++) w.track(`r${i}`, 0);
    checkThrough(w, 0, 2 * TIMEOUT);
    assert.equal(gone.length, MAX_MEMBERS);
  });
});
