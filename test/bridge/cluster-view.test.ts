/** The bridge's cluster view, fed heartbeats directly with explicit clocks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterView } from '../../src/bridge/cluster-view.ts';
import { expectedVersion } from '../../src/bridge/generation.ts';
import { STUCK_ALLOWANCE_MS_PER_TOKEN } from '../../src/cluster/engine-progress.ts';
import { MAX_MEMBERS } from '../../src/cluster/heartbeat-monitor.ts';
import { encodeReplicaHeartbeat, type ReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { replicaHeartbeatSubject } from '../../src/cluster/subjects.ts';

function beat(over: Partial<ReplicaHeartbeat> = {}): ReplicaHeartbeat {
  return {
    id: 'r1',
    model: 'tiny-gpt2',
    modelVersion: '1',
    device: 'cpu',
    state: 'ready',
    queueDepth: 0,
    activeSequences: 0,
    maxBatchSize: 8,
    maxQueue: 4,
    freeTokenBudget: 100,
    tokenBudget: 100,
    progress: 0,
    busySince: null,
    sentAt: 0,
    intervalMs: 200,
    ...over,
  };
}

describe('ClusterView', () => {
  it('lists live replicas and their models, versions sorted', () => {
    const view = new ClusterView();
    view.observe(beat(), 1_000);
    view.observe(beat({ id: 'r2', modelVersion: '2' }), 1_000);
    view.observe(beat({ id: 'r3', state: 'draining' }), 1_000);
    assert.deepEqual(
      view.replicas(1_050).map((r) => [r.id, r.live]),
      [
        ['r1', true],
        ['r2', true],
        ['r3', false],
      ],
    );
    assert.deepEqual(view.models(1_050), [
      { id: 'tiny-gpt2', versions: ['1', '2'], replicas: 2, firstSeen: 1_000 },
    ]);
    assert.deepEqual(view.liveVersions('tiny-gpt2', 1_050), ['1', '2']);
    assert.equal(view.ready(1_050), true);
  });

  it('drops a replica silent for more than three of its intervals, and one that stopped at once', () => {
    const view = new ClusterView();
    view.observe(beat(), 1_000);
    view.observe(beat({ id: 'r2' }), 1_000);
    view.sweep(1_600);
    assert.equal(view.replicas(1_600).length, 2);
    view.sweep(1_601);
    assert.deepEqual(view.replicas(1_601), []);
    assert.equal(view.ready(1_601), false);
    view.observe(beat(), 2_000);
    view.observe(beat({ state: 'stopped' }), 2_100);
    assert.deepEqual(view.replicas(2_100), []);
  });

  it('shows a replica whose engine stands still while it has work as stuck, not live', () => {
    const view = new ClusterView({ stuckTimeoutMs: 1_000 });
    view.observe(beat({ activeSequences: 1, progress: 5 }), 0);
    view.observe(beat({ activeSequences: 1, progress: 5 }), 900);
    assert.equal(view.replicas(900)[0]!.stuck, false);
    view.observe(beat({ activeSequences: 1, progress: 5 }), 1_000);
    assert.deepEqual(
      view.replicas(1_000).map((r) => [r.live, r.stuck]),
      [[false, true]],
    );
    view.observe(beat({ activeSequences: 1, progress: 6 }), 1_100);
    assert.equal(view.replicas(1_100)[0]!.live, true);
  });

  it('tells the version a request will get: pinned, the only live one, or none during a rollout', () => {
    const view = new ClusterView();
    const now = Date.now();
    view.observe(beat(), now);
    assert.equal(expectedVersion(view, { model: 'tiny-gpt2', prompt: 'x' }), '1');
    assert.equal(expectedVersion(view, { model: 'tiny-gpt2', version: '7', prompt: 'x' }), '7');
    assert.equal(expectedVersion(view, { model: 'other', prompt: 'x' }), undefined);
    view.observe(beat({ id: 'r2', modelVersion: '2' }), now);
    assert.equal(expectedVersion(view, { model: 'tiny-gpt2', prompt: 'x' }), undefined);
  });

  it('ignores a heartbeat whose subject names another replica than its body', () => {
    const view = new ClusterView();
    view.receive(replicaHeartbeatSubject('r2'), encodeReplicaHeartbeat(beat()), 1_000);
    assert.deepEqual(view.replicas(1_000), []);
    view.receive(replicaHeartbeatSubject('r1'), encodeReplicaHeartbeat(beat()), 1_000);
    assert.deepEqual(
      view.replicas(1_000).map((r) => r.id),
      ['r1'],
    );
    // A forged `stopped` on another subject does not take r1 out of the view.
    view.receive(replicaHeartbeatSubject('evil'), encodeReplicaHeartbeat(beat({ state: 'stopped' })), 1_010);
    assert.equal(view.replicas(1_010).length, 1);
  });

  it('a sweep that ran late (the bridge stalled) drops nobody; the next on-time one does', () => {
    const view = new ClusterView({ sweepIntervalMs: 250 });
    view.observe(beat(), 0);
    view.observe(beat({ id: 'r2' }), 0);
    view.sweep(250);
    view.sweep(2_000); // stalled: 1.5 s late
    assert.equal(view.replicas(2_000).length, 2);
    view.observe(beat(), 2_001); // r1's queued beat, read after the late timer
    view.sweep(2_250);
    assert.deepEqual(
      view.replicas(2_250).map((r) => r.id),
      ['r1'],
    );
  });

  it(`holds at most ${MAX_MEMBERS} replicas: new ids are refused, known ids still update`, () => {
    const view = new ClusterView();
    for (let i = 0; i < MAX_MEMBERS + 10; i++) view.observe(beat({ id: `r${i}`, model: `m${i}` }), 0);
    assert.equal(view.replicas(0).length, MAX_MEMBERS);
    view.observe(beat({ id: 'r3', state: 'draining' }), 1);
    assert.equal(view.replicas(1).find((r) => r.id === 'r3')?.state, 'draining', 'known ids still update');
  });

  it('a long prefill (many step tokens) is not stuck within its allowance, but stuck past it', () => {
    const view = new ClusterView({ stuckTimeoutMs: 1_000 });
    const step = { activeSequences: 8, progress: 5, stepTokens: 2_000, stepStartedAt: 0, sentAt: 0 };
    const deadline = 1_000 + 2_000 * STUCK_ALLOWANCE_MS_PER_TOKEN;
    for (let t = 0; t < deadline; t += 200) view.observe(beat({ ...step, sentAt: t }), t);
    assert.deepEqual(
      view.replicas(deadline - 1).map((r) => [r.live, r.stuck]),
      [[true, false]],
    );
    // Stuck is judged on a beat that shows it: the one at the deadline still shows the same step.
    view.observe(beat({ ...step, sentAt: deadline }), deadline);
    assert.deepEqual(
      view.replicas(deadline).map((r) => [r.live, r.stuck]),
      [[false, true]],
    );
  });
});
