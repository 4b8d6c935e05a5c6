/** Membership rules and routing strategies, on hand-made heartbeats and a hand-moved clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { isFull, loadOf, Membership } from '../../src/router/membership.ts';
import { LeastLoadedStrategy } from '../../src/router/strategies/least-loaded.ts';
import { PowerOfTwoStrategy } from '../../src/router/strategies/power-of-two.ts';
import { RoundRobinStrategy } from '../../src/router/strategies/round-robin.ts';

const INTERVAL = 200;
const RULES = { suspectAfterMissed: 2, deadAfterMissed: 3, stuckTimeoutMs: 1_500 };

function hb(id: string, over: Partial<ReplicaHeartbeat> = {}): ReplicaHeartbeat {
  return {
    id,
    model: 'm',
    modelVersion: '1',
    device: 'cpu',
    state: 'ready',
    queueDepth: 0,
    activeSequences: 0,
    maxBatchSize: 4,
    maxQueue: 2,
    freeTokenBudget: 100,
    tokenBudget: 100,
    progress: 0,
    busySince: null,
    sentAt: 0,
    intervalMs: INTERVAL,
    ...over,
  };
}

describe('membership', () => {
  it('counts each missed heartbeat interval once, up to death, and restarts after a beat', () => {
    const m = new Membership(RULES);
    m.observe(hb('a'), 0);
    m.tick(INTERVAL * 0.9);
    assert.equal(m.missedBeats, 0);
    m.tick(INTERVAL * 1.5);
    m.tick(INTERVAL * 1.7);
    assert.equal(m.missedBeats, 1, 'one interval passed without a beat');
    m.tick(INTERVAL * 10);
    assert.equal(m.missedBeats, RULES.deadAfterMissed, 'a dead member stops counting');
    m.observe(hb('a'), INTERVAL * 11);
    m.tick(INTERVAL * 12.5);
    assert.equal(m.missedBeats, RULES.deadAfterMissed + 1);
  });

  it('goes alive → suspect → dead on missed beats, and rejoins on the next beat', () => {
    const m = new Membership(RULES);
    assert.deepEqual(m.observe(hb('a'), 0), { id: 'a', from: 'new', to: 'alive' });
    assert.deepEqual(m.tick(2 * INTERVAL - 1), []);
    assert.deepEqual(m.tick(2 * INTERVAL), [{ id: 'a', from: 'alive', to: 'suspect' }]);
    assert.equal(m.candidates('m', undefined).length, 0, 'a suspect replica gets no new work');
    assert.deepEqual(m.tick(3 * INTERVAL), [
      { id: 'a', from: 'suspect', to: 'dead', reason: 'missed_heartbeats' },
    ]);
    assert.deepEqual(m.observe(hb('a'), 5 * INTERVAL), { id: 'a', from: 'dead', to: 'alive' });
    assert.equal(m.candidates('m', undefined).length, 1);
  });

  it('declares a replica whose progress stands still while it has work stuck, even if it beats', () => {
    const m = new Membership(RULES);
    m.observe(hb('a', { activeSequences: 2, progress: 10 }), 0);
    for (let t = INTERVAL; t < 1_500; t += INTERVAL) {
      m.observe(hb('a', { activeSequences: 2, progress: 10 }), t);
      assert.deepEqual(m.tick(t), []);
    }
    m.observe(hb('a', { activeSequences: 2, progress: 10 }), 1_500);
    assert.deepEqual(m.tick(1_500), [{ id: 'a', from: 'alive', to: 'dead', reason: 'stuck' }]);
    // Progress moves again: it rejoins.
    assert.deepEqual(m.observe(hb('a', { activeSequences: 2, progress: 11 }), 1_700), {
      id: 'a',
      from: 'dead',
      to: 'alive',
    });
  });

  it('an idle replica with a still counter is not stuck', () => {
    const m = new Membership(RULES);
    for (let t = 0; t <= 5_000; t += INTERVAL) {
      m.observe(hb('a', { progress: 3 }), t);
      assert.deepEqual(m.tick(t), []);
    }
  });

  it('a stopped heartbeat removes the replica at once; models stay known', () => {
    const m = new Membership(RULES);
    m.observe(hb('a'), 0);
    assert.deepEqual(m.observe(hb('a', { state: 'stopped' }), 10), {
      id: 'a',
      from: 'alive',
      to: 'dead',
      reason: 'stopped',
    });
    assert.equal(m.all().length, 0);
    assert.ok(m.known('m', undefined) && m.known('m', '1'));
    assert.ok(!m.known('m', '2') && !m.known('other', undefined));
  });

  it('filters candidates by model, version and state', () => {
    const m = new Membership(RULES);
    m.observe(hb('a'), 0);
    m.observe(hb('b', { modelVersion: '2' }), 0);
    m.observe(hb('c', { state: 'draining' }), 0);
    m.observe(hb('d', { model: 'other' }), 0);
    assert.deepEqual(
      m.candidates('m', undefined).map((x) => x.id),
      ['a', 'b'],
    );
    assert.deepEqual(
      m.candidates('m', '2').map((x) => x.id),
      ['b'],
    );
  });

  it('load counts other routers from the heartbeat plus this router now', () => {
    const m = new Membership(RULES);
    m.observe(hb('a', { activeSequences: 3 }), 0);
    const a = m.get('a')!;
    a.inFlight = 2; // ours, sent after the beat
    assert.equal(loadOf(a), 5);
    m.observe(hb('a', { activeSequences: 4 }), 200); // the beat now includes our 2
    assert.equal(loadOf(a), 4);
    a.inFlight = 0; // ours finished since
    assert.equal(loadOf(a), 2);
    a.inFlight = 4;
    assert.ok(isFull(a), 'batch 4 + queue 2 = 6 slots');
  });
});

describe('routing strategies', () => {
  const m = new Membership(RULES);
  m.observe(hb('a', { activeSequences: 3 }), 0);
  m.observe(hb('b', { activeSequences: 0 }), 0);
  m.observe(hb('c', { activeSequences: 1 }), 0);
  const all = m.all();

  it('least-loaded picks the lowest load', () => {
    assert.equal(new LeastLoadedStrategy().select(all).id, 'b');
  });

  it('power-of-two picks the less loaded of two distinct random candidates', () => {
    const draws = [0.0, 0.0]; // i = 0 (a); j = 0 of the other two, skipping i → 1 (b)
    const p2c = new PowerOfTwoStrategy(() => draws.shift() ?? 0);
    assert.equal(p2c.select(all).id, 'b');
    let picksOfMostLoaded = 0;
    const random = new PowerOfTwoStrategy();
    for (let i = 0; i < 500; i++) if (random.select(all).id === 'a') picksOfMostLoaded++;
    assert.equal(picksOfMostLoaded, 0, 'the most loaded of three is never the better of two');
  });

  it('round-robin cycles in id order', () => {
    const rr = new RoundRobinStrategy();
    assert.deepEqual(
      [0, 1, 2, 3].map(() => rr.select(all).id),
      ['a', 'b', 'c', 'a'],
    );
  });
});
