/** The bridge's cluster view, fed heartbeats directly with explicit clocks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterView } from '../../src/bridge/cluster-view.ts';
import { expectedVersion } from '../../src/bridge/generation.ts';
import type { ReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';

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
});
