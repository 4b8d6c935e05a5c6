/** Placement by token budget: prefer replicas whose budget fits, never refuse while a queue has room. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fits, type Member } from '../../src/router/membership.ts';
import { place } from '../../src/router/placement.ts';
import { LeastLoadedStrategy } from '../../src/router/strategies/least-loaded.ts';

function member(id: string, freeTokenBudget: number, load = 0): Member {
  return {
    id,
    inFlight: 0,
    inFlightAtBeat: 0,
    hb: {
      freeTokenBudget,
      tokenBudget: 1_000,
      activeSequences: load,
      queueDepth: 0,
      maxBatchSize: 4,
      maxQueue: 4,
    },
  } as unknown as Member;
}

describe('fits under load', () => {
  it('a loaded replica fits what its free budget holds, not what it lacks room for now', () => {
    assert.equal(fits(member('a', 300), 300), true);
    assert.equal(fits(member('a', 300), 301), false);
  });

  it('an estimate past the whole budget goes to the replica, loaded or not (never a busy loop)', () => {
    assert.equal(fits(member('a', 300), 1_001), true);
    assert.equal(fits(member('a', 1_000), 5_000), true);
  });
});

describe('place', () => {
  const strategy = new LeastLoadedStrategy();

  it('prefers a replica whose free budget holds the request over a less loaded one that lacks it', () => {
    const short = member('short', 100, 1);
    const roomy = member('roomy', 900, 3);
    assert.equal(place([short, roomy], new Set(), 500, strategy)?.id, 'roomy');
  });

  it('still places on a replica with queue room when no budget fits: it queues, it does not refuse', () => {
    const a = member('a', 0, 4);
    assert.equal(place([a], new Set(), 500, strategy)?.id, 'a');
  });

  it('skips replicas already tried and full ones', () => {
    const full = member('full', 900, 8);
    const tried = member('tried', 900, 0);
    assert.equal(place([full, tried], new Set(['tried']), 10, strategy), undefined);
  });
});
