import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterSlots, LoadShedder } from '../../src/bridge/load-shedding.ts';
import type { ReplicaView } from '../../src/bridge/cluster-view.ts';
import { BusyError } from '../../src/errors/errors.ts';

function replica(id: string, over: Partial<ReplicaView> = {}): ReplicaView {
  return {
    id,
    model: 'tiny',
    version: 'v1',
    device: 'cpu',
    state: 'ready',
    live: true,
    stuck: false,
    activeSequences: 0,
    queueDepth: 0,
    maxBatchSize: 2,
    maxQueue: 1,
    freeTokenBudget: 100,
    tokenBudget: 100,
    lastSeen: 0,
    retiringVersions: [],
    ...over,
  };
}

describe('bridge load shedding', () => {
  it('counts the batch and queue of live replicas of the model only', () => {
    const view = [
      replica('a'),
      replica('b', { live: false }),
      replica('c', { model: 'other' }),
      replica('d'),
    ];
    assert.equal(clusterSlots(view, 'tiny'), 6);
    assert.equal(clusterSlots(view, 'none'), 0);
  });

  it('refuses with busy past the slots and admits again once a generation ends', () => {
    const shedder = new LoadShedder(() => [replica('a')]);
    const releases = [shedder.admit('tiny', 1), shedder.admit('tiny', 2)];
    assert.throws(
      () => shedder.admit('tiny', 1),
      (err: unknown) => {
        assert.ok(err instanceof BusyError);
        assert.match(err.message, /3 generations of tiny in flight.*\(3: batches plus queues\)/);
        return true;
      },
    );
    releases[0]!();
    releases[0]!(); // idempotent: a second release frees nothing more
    assert.equal(shedder.count('tiny'), 2);
    shedder.admit('tiny', 1);
    assert.equal(shedder.count('tiny'), 3);
  });

  it('leaves unknown models and idle bridges to the routers', () => {
    const shedder = new LoadShedder(() => [replica('a')]);
    for (let i = 0; i < 10; i++) shedder.admit('unknown', 1);
    assert.equal(shedder.count('unknown'), 10);
    shedder.admit('tiny', 50); // more choices than slots, on an idle bridge: the routers judge it
    assert.throws(() => shedder.admit('tiny', 1), BusyError);
  });
});
