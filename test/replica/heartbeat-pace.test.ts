/** The announced heartbeat interval: exact when beats are on time, stretched by lateness, decaying. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AnnouncedInterval,
  MAX_STRETCH_FACTOR,
  STRETCH_HALF_LIFE_MS,
} from '../../src/replica/heartbeat-pace.ts';

describe('announced heartbeat interval', () => {
  it('is the configured interval while beats are on time', () => {
    const a = new AnnouncedInterval(200);
    for (let t = 0; t <= 10_000; t += 200) assert.equal(a.tick(t), 200);
  });

  it('stretches by the lateness a beat showed, so the same gap again is within 3 intervals', () => {
    const a = new AnnouncedInterval(200);
    a.tick(0);
    const announced = a.tick(1_300); // a beat 1.1 s late (a starved process)
    assert.equal(announced, 1_300);
    assert.ok(3 * announced > 1_300 + 200, 'a repeat of that gap is no longer three missed beats');
  });

  it('decays back once beats are on time again, and never passes its cap', () => {
    const a = new AnnouncedInterval(200);
    a.tick(0);
    a.tick(100_000); // a huge gap: capped
    assert.equal(a.current(), 200 * MAX_STRETCH_FACTOR);
    let t = 100_000;
    const until = t + 10 * STRETCH_HALF_LIFE_MS;
    while (t < until) a.tick((t += 200));
    assert.ok(a.current() <= 202, `back to the configured 200 ms within 1% (got ${a.current()})`);
  });
});
