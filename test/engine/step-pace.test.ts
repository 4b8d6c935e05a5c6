/** The measured pace a replica announces: slow passes raise it at once, fast ones lower it slowly. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LARGE_STEP_TOKENS, StepPace } from '../../src/engine/step-pace.ts';

describe('step pace', () => {
  it('knows nothing before a pass, then expects large passes per token and small ones per pass', () => {
    const pace = new StepPace();
    assert.equal(pace.expectedMs(4_096), 0);
    pace.observe(100, 1_200); // a prefill: 12 ms per token
    pace.observe(8, 400); // a decode step
    assert.equal(pace.expectedMs(1_000), 12_000);
    assert.equal(pace.expectedMs(8), 400);
    assert.equal(pace.expectedMs(LARGE_STEP_TOKENS), Math.max(400, 12 * LARGE_STEP_TOKENS));
    assert.equal(pace.expectedMs(0), 0, 'between steps');
  });

  it('follows a slower pass at once and a faster device only slowly', () => {
    const pace = new StepPace();
    pace.observe(4, 100);
    pace.observe(4, 1_000);
    assert.equal(pace.expectedMs(4), 1_000);
    for (let i = 0; i < 10; i++) pace.observe(4, 10);
    const after = pace.expectedMs(4);
    assert.ok(after < 1_000 && after > 700, `decays slowly: ${after}`);
  });
});
