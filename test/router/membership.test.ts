/** Membership rules and routing strategies, on hand-made heartbeats and a hand-moved clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  STUCK_ALLOWANCE_MAX_MS,
  STUCK_ALLOWANCE_MS_PER_TOKEN,
  STUCK_PACE_MARGIN,
  stepAllowanceMs,
} from '../../src/cluster/engine-progress.ts';
import { GONE_EVICT_AFTER_MS, MAX_MEMBERS, MAX_SKIPPED_TICKS } from '../../src/cluster/heartbeat-monitor.ts';
import { encodeReplicaHeartbeat, type ReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { replicaHeartbeatSubject, routerHeartbeatSubject } from '../../src/cluster/subjects.ts';
import { fits, isFull, loadOf, Membership, type MembershipChange } from '../../src/router/membership.ts';
import { LeastLoadedStrategy } from '../../src/router/strategies/least-loaded.ts';
import { PowerOfTwoStrategy } from '../../src/router/strategies/power-of-two.ts';
import { RoundRobinStrategy } from '../../src/router/strategies/round-robin.ts';

const INTERVAL = 200;
const TICK = 100;
const RULES = { suspectAfterMissed: 2, deadAfterMissed: 3, stuckTimeoutMs: 1_500, tickMs: TICK };

/** Ticks every TICK ms after `from` up to `to` (an on-time timer), gathering the changes. */
function tickThrough(m: Membership, from: number, to: number): MembershipChange[] {
  const changes: MembershipChange[] = [];
  for (let t = from + TICK; t <= to; t += TICK) changes.push(...m.tick(t));
  if ((to - from) % TICK !== 0) changes.push(...m.tick(to));
  return changes;
}

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
    tickThrough(m, INTERVAL * 1.7, INTERVAL * 10);
    assert.equal(m.missedBeats, RULES.deadAfterMissed, 'a dead member stops counting');
    m.observe(hb('a'), INTERVAL * 11);
    tickThrough(m, INTERVAL * 10, INTERVAL * 12.5);
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

  it('is stuck only on a beat that shows it: a late-beating (CPU-starved) replica is judged on its next beat', () => {
    const m = new Membership(RULES);
    // A replica announcing a stretched 1 s interval (its beats run late), progress moving.
    const slow = (progress: number): ReplicaHeartbeat =>
      hb('a', { activeSequences: 2, progress, intervalMs: 1_000 });
    m.observe(slow(10), 0);
    m.observe(slow(11), 1_000);
    // 1.6 s later, past the stuck timeout since progress last moved, but no beat said it stood still.
    assert.deepEqual(tickThrough(m, 1_000, 2_600), []);
    // The next beat shows progress moved: alive, never declared stuck meanwhile.
    m.observe(slow(12), 2_700);
    assert.deepEqual(tickThrough(m, 2_600, 2_800), []);
    assert.deepEqual(tickThrough(m, 2_800, 4_200), [], 'past the timeout again, still no beat saying so');
    // A beat past the timeout that shows progress still at 12: now it is stuck.
    m.observe(slow(12), 4_300);
    assert.deepEqual(m.tick(4_300), [{ id: 'a', from: 'alive', to: 'dead', reason: 'stuck' }]);
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

describe('membership: peers are who they say, liveness that does not lie', () => {
  const wire = (over: Partial<ReplicaHeartbeat> = {}): Uint8Array => encodeReplicaHeartbeat(hb('a', over));

  it('ignores a heartbeat whose subject names another id than its body, and counts it', () => {
    const m = new Membership(RULES);
    assert.equal(m.receive(replicaHeartbeatSubject('b'), wire(), 0), undefined);
    assert.equal(m.receive(routerHeartbeatSubject('a'), wire(), 0), undefined, 'a router subject');
    assert.equal(m.all().length, 0);
    assert.equal(m.counts.mismatched, 2);
    assert.deepEqual(m.receive(replicaHeartbeatSubject('a'), wire(), 0), {
      id: 'a',
      from: 'new',
      to: 'alive',
    });
    // A forged `stopped` for a on b's subject does not take a out, nor do forged beats keep it alive.
    assert.equal(m.receive(replicaHeartbeatSubject('b'), wire({ state: 'stopped' }), 10), undefined);
    assert.equal(m.get('a')?.liveness, 'alive');
    for (let t = TICK; t <= 3 * INTERVAL; t += TICK) {
      m.receive(replicaHeartbeatSubject('x'), wire(), t);
      m.tick(t);
    }
    assert.equal(m.get('a')?.liveness, 'dead', 'forged beats did not count as a sign of life');
    assert.equal(m.receive(replicaHeartbeatSubject('a'), new TextEncoder().encode('{'), 0), undefined);
    assert.equal(m.counts.malformed, 1);
  });

  it(`holds at most ${MAX_MEMBERS} members: new ids are refused and counted, known ids still update`, () => {
    const m = new Membership(RULES);
    for (let i = 0; i < MAX_MEMBERS; i++) m.observe(hb(`r${i}`), 0);
    assert.equal(m.observe(hb('late'), 0), undefined);
    assert.equal(m.all().length, MAX_MEMBERS);
    assert.equal(m.counts.refused, 1);
    assert.equal(m.get('late'), undefined);
    m.observe(hb('r7', { state: 'draining' }), 50);
    assert.equal(m.get('r7')?.hb.state, 'draining', 'a known id still updates');
    assert.equal(m.known('other', undefined), false);
    m.observe(hb('late2', { model: 'other' }), 50);
    assert.equal(m.known('other', undefined), false, 'a refused heartbeat does not add its model either');
  });

  it('a full table makes room by forgetting a member already declared dead', () => {
    const m = new Membership(RULES);
    for (let i = 0; i < MAX_MEMBERS; i++) m.observe(hb(`r${i}`), 0);
    for (let t = TICK; t <= 3 * INTERVAL; t += TICK) {
      for (let i = 1; i < MAX_MEMBERS; i++) m.observe(hb(`r${i}`), t); // all but r0 beat
      m.tick(t);
    }
    assert.equal(m.get('r0')?.liveness, 'dead');
    assert.deepEqual(m.observe(hb('new'), 3 * INTERVAL + 1), { id: 'new', from: 'new', to: 'alive' });
    assert.equal(m.get('r0'), undefined);
  });

  it(`evicts a silent dead member ${GONE_EVICT_AFTER_MS} ms after its death; a stuck one that beats stays`, () => {
    const m = new Membership(RULES);
    m.observe(hb('silent'), 0);
    m.observe(hb('stuck', { activeSequences: 1, progress: 5 }), 0);
    let t = 0;
    const until = (end: number): void => {
      for (; t + TICK <= end;) {
        t += TICK;
        if (t % INTERVAL === 0) m.observe(hb('stuck', { activeSequences: 1, progress: 5 }), t);
        m.tick(t);
      }
    };
    until(3 * INTERVAL);
    assert.equal(m.get('silent')?.liveness, 'dead');
    const diedAt = 3 * INTERVAL;
    until(diedAt + GONE_EVICT_AFTER_MS - TICK);
    assert.equal(m.get('silent')?.liveness, 'dead', 'still listed as dead for a while');
    until(diedAt + GONE_EVICT_AFTER_MS);
    assert.equal(m.get('silent'), undefined, 'forgotten after the bounded time');
    assert.equal(m.get('stuck')?.liveness, 'dead');
    until(diedAt + 2 * GONE_EVICT_AFTER_MS);
    assert.equal(
      m.get('stuck')?.liveness,
      'dead',
      'a stuck replica that beats is not forgotten (it would rejoin)',
    );
  });

  it('a tick that ran late (this process stalled) declares nobody dead; the queued beats count first', () => {
    const m = new Membership(RULES);
    m.observe(hb('a'), 0);
    m.observe(hb('b'), 0);
    m.observe(hb('gone'), 0);
    assert.deepEqual(m.tick(TICK), []);
    // The event loop stalls for 2 s: the timer fires late, before the beats queued in the socket.
    assert.deepEqual(m.tick(2_000), [], 'late tick: no verdict');
    assert.equal(m.counts.lateTicks, 1);
    assert.equal(m.missedBeats, 0);
    m.observe(hb('a'), 2_001);
    m.observe(hb('b'), 2_001);
    assert.deepEqual(m.tick(2_000 + TICK), [
      { id: 'gone', from: 'alive', to: 'dead', reason: 'missed_heartbeats' },
    ]);
    assert.equal(m.get('a')?.liveness, 'alive');
    assert.equal(m.get('b')?.liveness, 'alive');
  });

  it(`a monitor late on every tick still judges once per ${MAX_SKIPPED_TICKS + 1} ticks`, () => {
    const m = new Membership(RULES);
    m.observe(hb('a'), 0);
    m.tick(0);
    let t = 0;
    const verdicts: number[] = [];
    for (let i = 1; i <= 2 * (MAX_SKIPPED_TICKS + 1); i++) {
      t += 10 * TICK;
      if (m.tick(t).length > 0 || m.counts.lateTicks < i) verdicts.push(i);
      if (verdicts.length > 0) break;
    }
    assert.deepEqual(verdicts, [MAX_SKIPPED_TICKS + 1]);
    assert.equal(m.get('a')?.liveness, 'dead');
  });
});

describe('membership: a long prefill is not a stuck engine', () => {
  const STEP_TOKENS = 4_096;
  const allowance = STEP_TOKENS * STUCK_ALLOWANCE_MS_PER_TOKEN;
  /** A replica whose one step, started at `stepStartedAt` (its clock), runs without progress. */
  function longStep(
    m: Membership,
    skewMs: number,
    stepAgeAtFirstBeat: number,
    end: number,
  ): MembershipChange[] {
    const busy = { activeSequences: 4, progress: 9, stepTokens: STEP_TOKENS };
    const stepStartedAt = 1_000_000 + skewMs - stepAgeAtFirstBeat;
    const changes: MembershipChange[] = [];
    for (let t = 0; t <= end; t += TICK) {
      if (t % INTERVAL === 0) {
        const change = m.observe(hb('a', { ...busy, stepStartedAt, sentAt: 1_000_000 + skewMs + t }), t);
        if (change) changes.push(change);
      }
      changes.push(...m.tick(t));
    }
    return changes;
  }

  it('a step with many tokens gets stuckTimeoutMs plus its allowance, measured from its start', () => {
    const m = new Membership(RULES);
    const deadline = RULES.stuckTimeoutMs + allowance;
    assert.ok(deadline > RULES.stuckTimeoutMs * 2, 'the allowance is what keeps it alive here');
    assert.deepEqual(
      longStep(m, 0, 0, deadline - TICK).filter((c) => c.to === 'dead'),
      [],
      'not stuck within its allowance',
    );
    // The beat at the deadline still shows the same step: stuck (a verdict needs a beat that shows it).
    const busy = { activeSequences: 4, progress: 9, stepTokens: STEP_TOKENS, stepStartedAt: 1_000_000 };
    m.observe(hb('a', { ...busy, sentAt: 1_000_000 + deadline }), deadline);
    assert.deepEqual(m.tick(deadline), [{ id: 'a', from: 'alive', to: 'dead', reason: 'stuck' }]);
  });

  it('the step age comes from the sender’s own clock: skew does not matter, an old step is stuck sooner', () => {
    const deadline = RULES.stuckTimeoutMs + allowance;
    const skewed = new Membership(RULES);
    assert.deepEqual(longStep(skewed, 3_600_000, 0, deadline - TICK), [
      { id: 'a', from: 'new', to: 'alive' },
    ]);
    const old = new Membership(RULES);
    const changes = longStep(old, 0, 2_000, deadline - TICK);
    assert.deepEqual(
      changes.filter((c) => c.to === 'dead'),
      [{ id: 'a', from: 'alive', to: 'dead', reason: 'stuck' }],
      'a step already 2 s old at the first beat reaches its deadline 2 s sooner',
    );
  });

  it('a replica that measured itself slow buys a margin over the time it expects its step to take', () => {
    // A small step (a decode on SwiftShader) announcing 2 s: 4 × 2 s, far beyond 8 tokens' 8 ms.
    const expected = 2_000;
    const busy = {
      activeSequences: 8,
      progress: 9,
      stepTokens: 8,
      stepExpectedMs: expected,
      stepStartedAt: 1_000_000,
    };
    const deadline = RULES.stuckTimeoutMs + expected * STUCK_PACE_MARGIN;
    const m = new Membership(RULES);
    for (let t = 0; t < deadline; t += TICK) {
      if (t % INTERVAL === 0) m.observe(hb('a', { ...busy, sentAt: 1_000_000 + t }), t);
      assert.deepEqual(
        m.tick(t).filter((c) => c.to === 'dead'),
        [],
        `stuck at ${t} ms, within the announced pace`,
      );
    }
    m.observe(hb('a', { ...busy, sentAt: 1_000_000 + deadline }), deadline);
    assert.deepEqual(m.tick(deadline), [{ id: 'a', from: 'alive', to: 'dead', reason: 'stuck' }]);
  });

  it('a forged or runaway pace cannot buy more than the cap', () => {
    const huge = hb('a', { stepTokens: 1, stepExpectedMs: Number.MAX_SAFE_INTEGER });
    assert.equal(stepAllowanceMs(huge), STUCK_ALLOWANCE_MAX_MS);
    assert.equal(stepAllowanceMs(hb('a', { stepTokens: 0, stepExpectedMs: 0 })), 0);
  });

  it('without step figures (an older replica, or between steps) the plain stuck rule holds', () => {
    const m = new Membership(RULES);
    const busy = { activeSequences: 4, progress: 9, stepTokens: STEP_TOKENS };
    for (let t = 0; t < RULES.stuckTimeoutMs; t += TICK) {
      if (t % INTERVAL === 0) m.observe(hb('a', { ...busy, stepStartedAt: null }), t);
      assert.deepEqual(m.tick(t), []);
    }
    m.observe(hb('a', { ...busy, stepStartedAt: null }), RULES.stuckTimeoutMs);
    assert.deepEqual(m.tick(RULES.stuckTimeoutMs), [{ id: 'a', from: 'alive', to: 'dead', reason: 'stuck' }]);
  });
});

describe('fits', () => {
  it('a replica fits a request when its free budget holds the estimate, or it has nothing reserved', () => {
    const m = new Membership(RULES);
    m.observe(hb('a', { freeTokenBudget: 300, tokenBudget: 1_000 }), 0);
    m.observe(hb('idle', { freeTokenBudget: 1_000, tokenBudget: 1_000 }), 0);
    const a = m.get('a')!;
    assert.equal(fits(a, 300), true);
    assert.equal(fits(a, 301), false);
    assert.equal(fits(m.get('idle')!, 5_000), true, 'an idle replica decides on an oversized request itself');
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
