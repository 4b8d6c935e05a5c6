/** The shared heartbeat rules, on hand-made messages and a hand-moved clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  GONE_EVICT_AFTER_MS,
  HeartbeatMonitor,
  LATE_TICK_PERIODS,
  MAX_SKIPPED_TICKS,
  newPeer,
  type Peer,
} from '../../src/cluster/heartbeat-monitor.ts';
import {
  decodeRouterHeartbeat,
  encodeRouterHeartbeat,
  HEARTBEAT_INTERVAL_MAX_MS,
  type RouterHeartbeat,
} from '../../src/cluster/messages/heartbeat.ts';
import { replicaHeartbeatSubject, routerHeartbeatSubject } from '../../src/cluster/subjects.ts';

const TICK = 50;

function monitor(maxPeers?: number): HeartbeatMonitor<RouterHeartbeat, Peer> {
  return new HeartbeatMonitor({
    role: 'router',
    decode: decodeRouterHeartbeat,
    tickMs: TICK,
    ...(maxPeers !== undefined ? { maxPeers } : {}),
  });
}

function beat(id: string, intervalMs = 100): RouterHeartbeat {
  return { id, state: 'ready', inFlight: 0, sentAt: 0, intervalMs };
}

describe('HeartbeatMonitor', () => {
  it('accepts a heartbeat only when its subject names the id and role its body claims', () => {
    const m = monitor();
    assert.deepEqual(m.accept(routerHeartbeatSubject('a'), encodeRouterHeartbeat(beat('a'))), beat('a'));
    assert.equal(m.accept(routerHeartbeatSubject('b'), encodeRouterHeartbeat(beat('a'))), undefined);
    assert.equal(m.accept(replicaHeartbeatSubject('a'), encodeRouterHeartbeat(beat('a'))), undefined);
    assert.equal(m.accept('not.a.heartbeat', encodeRouterHeartbeat(beat('a'))), undefined);
    assert.equal(m.accept(routerHeartbeatSubject('a'), new TextEncoder().encode('{"id":"a"}')), undefined);
    assert.equal(m.counts.mismatched, 3);
    assert.equal(m.counts.malformed, 1);
  });

  it('counts silence in the sender’s announced interval, bounded by HEARTBEAT_INTERVAL_MAX_MS', () => {
    const m = monitor();
    const fast = m.track('fast', () => newPeer('fast', 0))!.peer;
    const slow = m.track('slow', () => newPeer('slow', 0))!.peer;
    m.heard(fast, beat('fast', 100), 0);
    m.heard(slow, { ...beat('slow'), intervalMs: 10 * HEARTBEAT_INTERVAL_MAX_MS }, 0);
    assert.equal(m.missed(fast, 250), 2.5);
    assert.equal(slow.intervalMs, HEARTBEAT_INTERVAL_MAX_MS);
    assert.equal(m.silent(fast, 300, 3), false);
    assert.equal(m.silent(fast, 301, 3), true);
    assert.equal(m.silent(fast, 301, 3, 1_000), false, 'a configured floor applies too');
    const unheard = m.track('unheard', () => newPeer('unheard', 0))!.peer;
    assert.equal(m.missed(unheard, 10_000), 0, 'no interval before a first beat');
    assert.equal(m.silent(unheard, 1_001, 3, 1_000), true, 'the floor alone before a first beat');
  });

  it('refuses new ids when full (counted), keeps known ones, and makes room from gone peers', () => {
    const m = monitor(2);
    assert.equal(m.track('a', () => newPeer('a', 0))?.fresh, true);
    assert.equal(m.track('b', () => newPeer('b', 0))?.fresh, true);
    assert.equal(
      m.track('c', () => newPeer('c', 0)),
      undefined,
    );
    assert.equal(m.counts.refused, 1);
    assert.equal(m.track('a', () => newPeer('a', 1))?.fresh, false);
    m.get('b')!.goneAt = 5;
    assert.equal(m.track('c', () => newPeer('c', 6))?.fresh, true);
    assert.equal(m.get('b'), undefined);
    assert.equal(m.size, 2);
  });

  it('evicts a gone peer GONE_EVICT_AFTER_MS after the later of its verdict and its last beat', () => {
    const m = monitor();
    const p = m.track('a', () => newPeer('a', 0))!.peer;
    p.goneAt = 1_000;
    p.lastSeen = 2_000; // still beating after the verdict (e.g. stuck): the clock restarts
    let t = 0;
    for (; t < 2_000 + GONE_EVICT_AFTER_MS - TICK; t += TICK) assert.ok(m.tick(t));
    assert.equal(m.size, 1);
    m.tick(2_000 + GONE_EVICT_AFTER_MS);
    assert.equal(m.size, 0);
    assert.equal(m.counts.evicted, 1);
  });

  it('skips the verdict of a tick more than LATE_TICK_PERIODS late, at most MAX_SKIPPED_TICKS in a row', () => {
    const m = monitor();
    const lateBy = (1 + LATE_TICK_PERIODS) * TICK;
    assert.equal(m.tick(0), true);
    assert.equal(m.tick(TICK), true);
    assert.equal(m.tick(TICK + lateBy), true, `exactly ${LATE_TICK_PERIODS} period(s) late is on time`);
    let t = TICK + 2 * lateBy + 1;
    assert.equal(m.tick(t), false, `more than ${LATE_TICK_PERIODS} period(s) late`);
    const results: boolean[] = [];
    for (let i = 0; i < MAX_SKIPPED_TICKS; i++) results.push(m.tick((t += 10 * TICK)));
    assert.deepEqual(results, [...Array<boolean>(MAX_SKIPPED_TICKS - 1).fill(false), true]);
    assert.equal(m.counts.lateTicks, MAX_SKIPPED_TICKS);
    m.restartTicks();
    assert.equal(m.tick(t + 100 * TICK), true, 'a restarted timer has no previous tick to be late to');
  });
});
