import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  armStats,
  meanDifferenceBounds,
  normalQuantile,
  proportionDifferenceBounds,
} from '../../src/rollout/stats.ts';

/** Reference quantiles from scipy.stats.norm.ppf (SciPy 1.17, Cephes ndtri). */
const REFERENCE: [number, number][] = [
  [0.5, 0],
  [0.3, -0.5244005127080409],
  [0.75, 0.6744897501960817],
  [0.9, 1.2815515655446004],
  [0.95, 1.6448536269514722],
  [0.975, 1.959963984540054],
  [0.99, 2.3263478740408408],
  [0.995, 2.5758293035489004],
  [0.999, 3.090232306167813],
  [0.9999, 3.719016485455709],
  // Both sides of AS 241's region boundaries (|p − 0.5| = 0.425, and r = 5 near p = 1.4e-11).
  [0.02425, -1.972961051311885],
  [0.97575, 1.972961051311885],
  [1e-6, -4.753424308822899],
  [1e-9, -5.9978070150076865],
  [1e-12, -7.034483825301131],
  [1 - 1e-12, 7.0344869100478356],
];

describe('normalQuantile', () => {
  it('matches reference values to 1e-9 over [1e-12, 1 − 1e-12]', () => {
    for (const [p, z] of REFERENCE) {
      const got = normalQuantile(p);
      assert.ok(Math.abs(got - z) <= 1e-9, `Φ⁻¹(${p}) = ${got}, expected ${z}`);
    }
  });

  it('is odd about 1/2 and increasing', () => {
    let previous = -Infinity;
    for (let i = 1; i < 1000; i++) {
      const p = i / 1000;
      const z = normalQuantile(p);
      assert.ok(z > previous, `not increasing at ${p}`);
      assert.ok(Math.abs(z + normalQuantile(1 - p)) < 1e-12, `not odd at ${p}`);
      previous = z;
    }
  });

  it('refuses p outside (0, 1)', () => {
    for (const p of [0, 1, -0.1, 1.5, Number.NaN]) assert.throws(() => normalQuantile(p), RangeError);
  });
});

describe('proportionDifferenceBounds (Agresti–Caffo)', () => {
  it('matches hand-computed bounds', () => {
    // (x+1)/(n+2) per arm, z₀.₉₅ = 1.6449: see the module comment of stats.ts.
    const cases: [number, number, number, number, number, number, number, number][] = [
      [0, 50, 0, 500, 0.95, 0, -0.014257989205813844, 0.04873546392233239],
      [15, 50, 0, 50, 0.95, 0.3, 0.17862267973182286, 0.3983003971912541],
      [3, 40, 10, 200, 0.99, 0.025, -0.0709429900414803, 0.15250828942856184],
    ];
    for (const [xa, na, xb, nb, c, estimate, lower, upper] of cases) {
      const b = proportionDifferenceBounds(xa, na, xb, nb, c);
      assert.ok(Math.abs(b.estimate - estimate) < 1e-12, `estimate ${b.estimate}`);
      assert.ok(Math.abs(b.lower - lower) < 1e-12, `lower ${b.lower} vs ${lower}`);
      assert.ok(Math.abs(b.upper - upper) < 1e-12, `upper ${b.upper} vs ${upper}`);
    }
  });

  it('stays wide with no events (Wald would give a zero-width interval)', () => {
    const b = proportionDifferenceBounds(0, 30, 0, 3000, 0.95);
    assert.equal(b.estimate, 0);
    assert.ok(b.upper > 0.03, `upper ${b.upper}`);
    assert.ok(b.lower < 0);
  });

  it('is finite with an empty arm', () => {
    const b = proportionDifferenceBounds(0, 0, 5, 100, 0.95);
    assert.ok(Number.isFinite(b.lower) && Number.isFinite(b.upper));
    assert.ok(b.upper - b.lower > 0.5);
  });

  it('refuses a confidence outside (0.5, 1)', () => {
    assert.throws(() => proportionDifferenceBounds(1, 10, 1, 10, 0.4), RangeError);
    assert.throws(() => proportionDifferenceBounds(1, 10, 1, 10, 1), RangeError);
  });
});

describe('meanDifferenceBounds (Welch, normal quantile)', () => {
  const a = { n: 25, mean: 12, sd: 3 };
  const b = { n: 100, mean: 10, sd: 4 };

  it('bounds a − b with √(sa²/na + sb²/nb)', () => {
    // se = √(9/25 + 16/100) = √0.52
    const r = meanDifferenceBounds(a, b, 0.95);
    assert.ok(r !== null);
    assert.ok(Math.abs(r.estimate - 2) < 1e-12);
    assert.ok(Math.abs(r.lower - 0.8138791814787101) < 1e-12, `lower ${r.lower}`);
    assert.ok(Math.abs(r.upper - 3.1861208185212897) < 1e-12, `upper ${r.upper}`);
  });

  it('bounds a − k·b with √(sa²/na + k²·sb²/nb), counting b’s uncertainty', () => {
    // k = 1.25: estimate 12 − 12.5, se = √(0.36 + 1.5625 × 0.16) = √0.61
    const r = meanDifferenceBounds(a, b, 0.95, 1.25);
    assert.ok(r !== null);
    assert.ok(Math.abs(r.estimate + 0.5) < 1e-12);
    assert.ok(Math.abs(r.lower + 1.784671750681162) < 1e-12, `lower ${r.lower}`);
    assert.ok(Math.abs(r.upper - 0.784671750681162) < 1e-12, `upper ${r.upper}`);
  });

  it('is null when an arm has no values', () => {
    assert.equal(meanDifferenceBounds({ n: 0, mean: 0, sd: 0 }, b, 0.95), null);
    assert.equal(meanDifferenceBounds(a, { n: 0, mean: 0, sd: 0 }, 0.95), null);
  });
});

describe('armStats', () => {
  it('computes n, mean and the sample standard deviation', () => {
    const s = armStats([2, 4, 4, 4, 5, 5, 7, 9]);
    assert.equal(s.n, 8);
    assert.equal(s.mean, 5);
    assert.ok(Math.abs(s.sd - Math.sqrt(32 / 7)) < 1e-12);
    assert.deepEqual(armStats([]), { n: 0, mean: 0, sd: 0 });
    assert.deepEqual(armStats([3]), { n: 1, mean: 3, sd: 0 });
  });

  it('keeps a small spread around a large mean (no cancellation)', () => {
    const s = armStats([1e9 + 1, 1e9 + 2, 1e9 + 3]);
    assert.ok(Math.abs(s.sd - 1) < 1e-6, `sd ${s.sd}`);
  });
});
