/** The router's token-budget fit: the replica decides on a request no wait could make fit. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fits, type Member } from '../../src/router/membership.ts';

function member(freeTokenBudget: number, tokenBudget: number): Member {
  return { hb: { freeTokenBudget, tokenBudget } } as Member;
}

describe('fits under load', () => {
  it('a loaded replica fits what its free budget holds, not what it lacks room for now', () => {
    assert.equal(fits(member(300, 1_000), 300), true);
    assert.equal(fits(member(300, 1_000), 301), false);
  });

  it('an estimate past the whole budget goes to the replica, loaded or not (never a busy loop)', () => {
    assert.equal(fits(member(300, 1_000), 1_001), true);
    assert.equal(fits(member(1_000, 1_000), 5_000), true);
  });
});
