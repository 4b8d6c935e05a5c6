import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { GREEDY, Sampler, TokenCounts, uniformAt } from '../../src/engine/sampling.ts';
import { randomSeed } from '../../src/cluster/messages/params.ts';
import type { SamplingParams } from '../../src/engine/sampling.ts';

function params(overrides: Partial<SamplingParams>): SamplingParams {
  return { ...GREEDY, temperature: 1, seed: 1234, ...overrides };
}

/** Deterministic pseudo-random logits (a fixed LCG, so every run sees the same rows). */
function randomLogits(n: number, seed: number, scale = 4): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * scale;
  }
  return out;
}

function softmax(logits: readonly number[], temperature: number): number[] {
  const max = Math.max(...logits);
  const e = logits.map((l) => Math.exp((l - max) / temperature));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

function histogram(sampler: Sampler, logits: Float32Array, p: SamplingParams, draws: number): number[] {
  const counts = new Array<number>(logits.length).fill(0);
  const none = new TokenCounts();
  for (let pos = 0; pos < draws; pos++) counts[sampler.sample(logits, p, pos, none)]!++;
  return counts;
}

function chiSquare(observed: readonly number[], expectedProbs: readonly number[]): number {
  const total = observed.reduce((a, b) => a + b, 0);
  let chi = 0;
  observed.forEach((o, i) => {
    const e = expectedProbs[i]! * total;
    chi += (o - e) ** 2 / e;
  });
  return chi;
}

/**
 * A straightforward reference: full sort of the vocabulary, same arithmetic as the contract
 * (penalties in float32, weights exp(-(max - l) / T) cut off 40 below the best, nucleus "keep
 * while the mass before is below topP", draws in rank order after top-k and in id order otherwise).
 */
function referenceSample(
  logits: Float32Array,
  p: SamplingParams,
  position: number,
  counts: TokenCounts,
): number {
  const n = logits.length;
  const work = Float32Array.from(logits);
  for (let i = 0; i < counts.distinct; i++) {
    const id = counts.idAt(i);
    if (id < n) work[id] = work[id]! - (p.frequencyPenalty * counts.countAt(i) + p.presencePenalty);
  }
  const ranked = Array.from({ length: n }, (_, i) => i);
  ranked.sort((a, b) => work[b]! - work[a]! || a - b);
  if (p.temperature === 0) return ranked[0]!;
  const invT = 1 / p.temperature;
  const max = work[ranked[0]!]!;
  const weight = (id: number): number => {
    const gap = (max - work[id]!) * invT;
    return gap < 40 ? Math.exp(-gap) : 0;
  };
  const u = uniformAt(p.seed, position);
  const topK = p.topK > 0 && p.topK < n;
  let candidates = topK ? ranked.slice(0, p.topK) : ranked;
  if (p.topP < 1) {
    let total = 0;
    if (topK) for (const id of candidates) total += weight(id);
    else for (let i = 0; i < n; i++) total += weight(i);
    let cum = 0;
    const kept: number[] = [];
    for (const id of candidates) {
      if (kept.length > 0 && cum >= p.topP * total) break;
      kept.push(id);
      cum += weight(id);
    }
    candidates = kept;
  }
  if (!topK) candidates = candidates.slice().sort((a, b) => a - b);
  let mass = 0;
  for (const id of candidates) mass += weight(id);
  let cum = 0;
  for (const id of candidates) {
    cum += weight(id);
    if (cum > u * mass) return id;
  }
  return candidates[candidates.length - 1]!;
}

describe('uniformAt', () => {
  it('stays in [0, 1) and is roughly uniform', () => {
    const bins = new Array<number>(10).fill(0);
    const draws = 100_000;
    let sum = 0;
    for (let pos = 0; pos < draws; pos++) {
      const u = uniformAt(987654321, pos);
      assert.ok(u >= 0 && u < 1, `uniformAt out of range: ${u}`);
      bins[Math.floor(u * 10)]!++;
      sum += u;
    }
    for (const b of bins) assert.ok(Math.abs(b - draws / 10) < draws / 100, `bins ${bins.join(',')}`);
    assert.ok(Math.abs(sum / draws - 0.5) < 0.005);
  });

  it('is a pure function of seed and position, using all 53 bits of the seed', () => {
    assert.equal(uniformAt(42, 7), uniformAt(42, 7));
    assert.notEqual(uniformAt(42, 7), uniformAt(42, 8));
    assert.notEqual(uniformAt(42, 7), uniformAt(43, 7));
    assert.notEqual(uniformAt(5, 0), uniformAt(5 + 2 ** 32, 0));
    const top = 2 ** 53 - 1;
    assert.ok(uniformAt(top, 0) < 1);
    assert.notEqual(uniformAt(top, 0), uniformAt(top - 2 ** 32, 0));
  });

  it('uses the low bits of the second word (53-bit resolution)', () => {
    const fractions = new Set<number>();
    for (let pos = 0; pos < 1000; pos++) fractions.add((uniformAt(1, pos) * 2 ** 32) % 1);
    assert.ok(fractions.size > 900, 'values below 2^-32 should vary');
  });
});

describe('randomSeed', () => {
  it('returns distinct integers in [0, 2^53)', () => {
    const seeds = new Set<number>();
    for (let i = 0; i < 100; i++) {
      const seed = randomSeed();
      assert.ok(Number.isSafeInteger(seed) && seed >= 0 && seed < 2 ** 53, String(seed));
      seeds.add(seed);
    }
    assert.equal(seeds.size, 100);
    assert.ok(
      [...seeds].some((s) => s > 2 ** 32),
      'high bits are used',
    );
  });
});

describe('TokenCounts', () => {
  it('counts ids and lists distinct ones in first-seen order', () => {
    const counts = TokenCounts.from([5, 3, 5, 5, 9]);
    assert.equal(counts.count(5), 3);
    assert.equal(counts.count(3), 1);
    assert.equal(counts.count(4), 0);
    assert.equal(counts.distinct, 3);
    assert.equal(counts.total, 5);
    assert.deepEqual(
      Array.from({ length: counts.distinct }, (_, i) => [counts.idAt(i), counts.countAt(i)]),
      [
        [5, 3],
        [3, 1],
        [9, 1],
      ],
    );
    counts.clear();
    assert.equal(counts.distinct, 0);
    assert.equal(counts.count(5), 0);
  });
});

describe('Sampler', () => {
  it('greedy is the argmax, ties going to the lowest id', () => {
    const sampler = new Sampler(5);
    const none = new TokenCounts();
    assert.equal(sampler.sample(Float32Array.of(1, 3, 3, 2, -Infinity), GREEDY, 0, none), 1);
    assert.equal(sampler.sample(Float32Array.of(-Infinity, -5, 0, 0, 0), GREEDY, 0, none), 2);
    assert.equal(sampler.sample(Float32Array.of(0, 0, 0, 0, 9), GREEDY, 0, none), 4);
  });

  it('does not modify the caller row and reads subarray views', () => {
    const batch = new Float32Array([9, 0, 0, 0, 1, 2, 8, 3]);
    const row = batch.subarray(4, 8);
    const before = Float32Array.from(batch);
    const sampler = new Sampler(4);
    const counts = TokenCounts.from([2, 2]);
    const p = params({ frequencyPenalty: 10, presencePenalty: 1 });
    assert.equal(sampler.sample(row, { ...p, temperature: 0 }, 0, counts), 3);
    sampler.sample(row, { ...p, topK: 2 }, 1, counts);
    sampler.sample(row, { ...p, topP: 0.5 }, 2, counts);
    sampler.sample(row, p, 3, counts);
    assert.deepEqual(batch, before);
  });

  it('is deterministic in (seed, position, logits) and spreads over positions', () => {
    const logits = new Float32Array(50); // uniform distribution
    const p = params({ seed: 99 });
    const a = new Sampler(50);
    const b = new Sampler(50);
    const none = new TokenCounts();
    const seen = new Set<number>();
    for (let pos = 0; pos < 200; pos++) {
      const token = a.sample(logits, p, pos, none);
      assert.equal(b.sample(logits, p, pos, none), token);
      assert.equal(a.sample(logits, p, pos, none), token, 'reusing scratch buffers changes nothing');
      seen.add(token);
    }
    assert.ok(seen.size > 40, `only ${seen.size} distinct tokens over 200 positions`);
    const otherSeed = Array.from({ length: 50 }, (_, pos) =>
      a.sample(logits, { ...p, seed: 100 }, pos, none),
    );
    const sameSeed = Array.from({ length: 50 }, (_, pos) => a.sample(logits, p, pos, none));
    assert.notDeepEqual(otherSeed, sameSeed);
  });

  it('top-k = 1 and a tiny top-p are greedy', () => {
    const sampler = new Sampler(300);
    const none = new TokenCounts();
    for (let row = 0; row < 50; row++) {
      const logits = randomLogits(300, row);
      if (row % 5 === 0) logits[17] = logits[250] = 100; // a tie for the max
      const greedy = sampler.sample(logits, GREEDY, row, none);
      assert.equal(sampler.sample(logits, params({ topK: 1, temperature: 2 }), row, none), greedy);
      assert.equal(sampler.sample(logits, params({ topP: 1e-9, temperature: 2 }), row, none), greedy);
      assert.equal(sampler.sample(logits, params({ topP: 0, temperature: 2 }), row, none), greedy);
      if (row % 5 === 0) assert.equal(greedy, 17);
    }
  });

  it('draws with temperature as softmax(logits / T) over many positions', () => {
    const logits = [0, 1, 2, 0.5, -1];
    const sampler = new Sampler(5);
    for (const temperature of [0.5, 1, 2]) {
      const observed = histogram(
        sampler,
        Float32Array.from(logits),
        params({ temperature, seed: 7 }),
        20_000,
      );
      const chi = chiSquare(observed, softmax(logits, temperature));
      // 4 degrees of freedom: 18.5 is the 0.1 % tail; the draws are fixed by the seed.
      assert.ok(chi < 18.5, `T=${temperature}: chi-square ${chi.toFixed(1)}, counts ${observed.join(',')}`);
    }
    const cold = histogram(sampler, Float32Array.from(logits), params({ temperature: 0.5, seed: 7 }), 2000);
    const hot = histogram(sampler, Float32Array.from(logits), params({ temperature: 2, seed: 7 }), 2000);
    assert.ok(cold[2]! > hot[2]!, 'a lower temperature concentrates on the best token');
  });

  it('top-k keeps only the k best, renormalised', () => {
    const logits = [0, 1, 2, 0.5, 1.5];
    const sampler = new Sampler(5);
    const observed = histogram(sampler, Float32Array.from(logits), params({ topK: 2, seed: 3 }), 10_000);
    assert.equal(observed[0]! + observed[1]! + observed[3]!, 0, observed.join(','));
    const probs = softmax([2, 1.5], 1);
    const chi = chiSquare([observed[2]!, observed[4]!], probs);
    assert.ok(chi < 10.8, `chi-square ${chi.toFixed(1)}`); // 1 d.o.f., 0.1 % tail
  });

  it('top-p keeps the smallest head holding topP of the mass', () => {
    const logits = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
    const sampler = new Sampler(4);
    const seen = (topP: number): number[] => {
      const h = histogram(sampler, logits, params({ topP, seed: 11 }), 4000);
      return h.flatMap((c, id) => (c > 0 ? [id] : []));
    };
    assert.deepEqual(seen(0.5), [0]);
    assert.deepEqual(seen(0.7), [0, 1]);
    assert.deepEqual(seen(0.85), [0, 1, 2]);
    assert.deepEqual(seen(0.99), [0, 1, 2, 3]);
  });

  it('a wide nucleus over a flat vocabulary keeps exactly the best-ranked ids', () => {
    const n = 5000;
    const flat = new Float32Array(n);
    const sampler = new Sampler(n);
    const h = histogram(sampler, flat, params({ topP: 0.5, seed: 5 }), 3000);
    const kept = h.flatMap((c, id) => (c > 0 ? [id] : []));
    // Equal logits rank by id: the nucleus is ids 0..2499, and the draws cover it.
    assert.ok(kept[kept.length - 1]! < 2500, `max id ${kept[kept.length - 1]}`);
    assert.ok(kept[kept.length - 1]! > 2400 && kept.length > 1200, `${kept.length} ids`);
  });

  it('matches a full-sort reference implementation', () => {
    const cases: Array<Partial<SamplingParams>> = [
      {},
      { temperature: 0.7 },
      { topK: 5 },
      { topK: 40, temperature: 1.3 },
      { topP: 0.9 },
      { topP: 0.3, temperature: 0.5 },
      { topP: 0.999, temperature: 3 },
      { topK: 50, topP: 0.8 },
      { topK: 2000, topP: 0.95 },
      { frequencyPenalty: 0.7, presencePenalty: 0.4, topP: 0.9 },
      { frequencyPenalty: -0.5, topK: 10 },
    ];
    const n = 2000;
    const sampler = new Sampler(16); // grows on first use
    const counts = TokenCounts.from([3, 3, 1999, 42, 42, 42, 7]);
    for (let row = 0; row < 32; row++) {
      // Spread out, very spread out, nearly flat (one top-p bucket), and coarse (many ties).
      const logits = randomLogits(n, 1000 + row, [8, 30, 0.01, 6][row % 4]);
      if (row % 4 === 3) logits.forEach((l, i) => (logits[i] = Math.round(l * 2) / 2));
      for (const overrides of cases) {
        const p = params({ ...overrides, seed: 17 + row });
        for (let pos = 0; pos < 5; pos++) {
          const expected = referenceSample(logits, p, pos, counts);
          const actual = sampler.sample(logits, p, pos, counts);
          assert.equal(actual, expected, `row ${row} pos ${pos} ${JSON.stringify(overrides)}`);
        }
      }
    }
  });

  it('penalties lower generated tokens, by count and by presence', () => {
    const logits = Float32Array.of(2, 1.9, 0);
    const sampler = new Sampler(3);
    const once = TokenCounts.from([0]);
    const thrice = TokenCounts.from([0, 0, 0]);
    const freq = { ...GREEDY, frequencyPenalty: 0.05 };
    assert.equal(sampler.sample(logits, freq, 0, once), 0, '2 - 0.05 still wins');
    assert.equal(sampler.sample(logits, freq, 0, thrice), 1, '2 - 0.15 loses');
    const presence = { ...GREEDY, presencePenalty: 0.2 };
    assert.equal(sampler.sample(logits, presence, 0, once), 1);
    assert.equal(sampler.sample(logits, presence, 0, new TokenCounts()), 0, 'only generated tokens count');
    assert.equal(sampler.sample(logits, presence, 0, TokenCounts.from([7, 99])), 0, 'ids outside the row');

    const even = new Float32Array(4);
    const repeated = TokenCounts.from([0, 0, 0, 0]);
    const p = params({ frequencyPenalty: 0.5, seed: 21 });
    const base = histogram(sampler, even, p, 4000)[0]!;
    const penalised = new Array<number>(4).fill(0);
    for (let pos = 0; pos < 4000; pos++) penalised[sampler.sample(even, p, pos, repeated)]!++;
    // exp(-2) / (exp(-2) + 3) ≈ 4.3 % instead of 25 %.
    assert.ok(base > 900 && penalised[0]! < 260, `${base} vs ${penalised[0]}`);
  });

  it('treats NaN as masked and gives token 0 when every logit is masked', () => {
    const sampler = new Sampler(3);
    assert.equal(sampler.sample(Float32Array.of(NaN, NaN, NaN), params({}), 0, new TokenCounts()), 0);
    assert.equal(
      sampler.sample(Float32Array.of(NaN, -1, 2), GREEDY, 0, new TokenCounts()),
      2,
      'NaN is masked',
    );
    const masked = Float32Array.of(-Infinity, -Infinity, -Infinity);
    assert.equal(sampler.sample(masked, params({}), 0, new TokenCounts()), 0);
    assert.equal(sampler.sample(masked, params({ topK: 2 }), 0, new TokenCounts()), 0);
    const one = Float32Array.of(-Infinity, 0, -Infinity);
    for (let pos = 0; pos < 20; pos++) {
      assert.equal(sampler.sample(one, params({ topP: 0.9 }), pos, new TokenCounts()), 1);
      assert.equal(sampler.sample(one, params({}), pos, new TokenCounts()), 1);
    }
  });
});
