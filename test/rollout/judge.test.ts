import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CompletionEvent } from '../../src/cluster/messages/capture.ts';
import type { CollectedRecord } from '../../src/collector/record.ts';
import { falseVerdictBound, judge, judgeCheck } from '../../src/rollout/judge.ts';
import type { CheckPolicy, RolloutArm, RolloutPolicy } from '../../src/rollout/types.ts';
import { checkValue, errorValue } from '../../src/rollout/values.ts';
import { BASE_MS, completion, rec } from '../collector/records.ts';

const ROLLOUT = 'ro-1';
/** Wide enough for every synthetic request (request `seq` starts near BASE_MS + seq s). */
const WINDOW = { id: ROLLOUT, from: BASE_MS - 60_000, to: BASE_MS + 10_000_000_000 };

/** mulberry32: a small seeded generator, so every synthetic sample is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How one arm behaves. */
interface ArmSpec {
  n: number;
  /** Share of requests that fail with `internal`. @default 0.02 */
  errors?: number;
  /** Mean ttft and tpot in ms (uniform on ±50%). @default 40, 8 */
  ttft?: number;
  tpot?: number;
  /** Most completion tokens (uniform on [2, maxTokens]). @default 40 */
  maxTokens?: number;
  /** Probability of thumbs up (rating in [0.8, 1], else in [0, 0.2]). @default 0.7 */
  up?: number;
}

let nextSeq = 1;

/** The factory's start and end times of request `seq`, formatted once (they dominated the Monte Carlo). */
const times = new Map<number, { started_at: string; ended_at: string }>();
function timesOf(seq: number): { started_at: string; ended_at: string } {
  let t = times.get(seq);
  if (t === undefined) {
    const c = completion(seq);
    t = { started_at: c.started_at, ended_at: c.ended_at };
    times.set(seq, t);
  }
  return t;
}

/**
 * A record as test/collector/records.ts's `rec` builds it, as one object literal: the Monte
 * Carlo builds a million and a half of them, and spreading factory objects took seconds.
 */
function synthetic(
  seq: number,
  rollout: { id: string; arm: RolloutArm },
  outcome: { tokens: number; ttft: number; duration: number } | 'failed',
  fb?: { rating: number; up: boolean },
): CollectedRecord {
  const { started_at, ended_at } = timesOf(seq);
  const ok = outcome !== 'failed';
  const request_id = `req-${seq}`;
  const event: CompletionEvent = {
    v: 1,
    request_id,
    requester: 'bridge',
    final: true,
    attempt: 1,
    router: 'rt-1',
    model: 'tiny-gpt2',
    prompt_tokens: 3,
    completion_tokens: ok ? outcome.tokens : 0,
    text_complete: true,
    sampling: {},
    attempts: 1,
    failovers: [],
    duration_ms: ok ? outcome.duration : 5,
    text_captured: false,
    rollout,
    started_at,
    ended_at,
  };
  if (ok) {
    event.finish_reason = 'stop';
    event.ttft_ms = outcome.ttft;
  } else {
    event.error = { code: 'internal', message: 'boom' };
  }
  const record: CollectedRecord = { request_id, completion: event, completion_seq: seq };
  if (fb !== undefined) {
    record.feedback = {
      v: 1,
      request_id,
      rating: fb.rating,
      thumbs: fb.up ? 'up' : 'down',
      received_at: ended_at,
    };
    record.feedback_seq = seq;
  }
  return record;
}

/**
 * `spec.n` records of one arm of {@link ROLLOUT}, with feedback on each completed one; request
 * `i` gets sequence (and start second) `seqOf(i)`, by default the next free one.
 */
function arm(
  rand: () => number,
  which: RolloutArm,
  spec: ArmSpec,
  rolloutId = ROLLOUT,
  seqOf: (i: number) => number = () => nextSeq++,
): CollectedRecord[] {
  const out: CollectedRecord[] = [];
  for (let i = 0; i < spec.n; i++) {
    const seq = seqOf(i);
    const failed = rand() < (spec.errors ?? 0.02);
    const tokens = 2 + Math.floor(rand() * ((spec.maxTokens ?? 40) - 1));
    const ttft = (spec.ttft ?? 40) * (0.5 + rand());
    const tpot = (spec.tpot ?? 8) * (0.5 + rand());
    const up = rand() < (spec.up ?? 0.7);
    const rating = up ? 0.8 + 0.2 * rand() : 0.2 * rand();
    const rollout = { id: rolloutId, arm: which };
    out.push(
      failed
        ? synthetic(seq, rollout, 'failed')
        : synthetic(seq, rollout, { tokens, ttft, duration: ttft + tpot * (tokens - 1) }, { rating, up }),
    );
  }
  return out;
}

const check = (margin: number, extra: Partial<CheckPolicy> = {}): CheckPolicy => ({
  margin,
  min_samples: 20,
  confidence: 0.95,
  ...extra,
});

/** Every check, margins of the kind a real policy holds. */
const FULL: RolloutPolicy = {
  checks: {
    error_rate: check(0.05),
    ttft: check(0.25),
    tpot: check(0.25),
    rating: check(0.1),
    thumbs_up: check(0.1),
  },
  interval_ms: 10_000,
  min_step_ms: 30_000,
  max_looks: 3,
  on_inconclusive: 'hold',
};

const withChecks = (checks: RolloutPolicy['checks']): RolloutPolicy => ({ ...FULL, checks });

describe('judge', () => {
  it('passes equal arms with enough samples, every field filled', () => {
    const rand = seeded(1);
    const records = [...arm(rand, 'stable', { n: 1200 }), ...arm(rand, 'canary', { n: 400 })];
    const j = judge(records, WINDOW, FULL);
    assert.deepEqual(j.samples, { stable: 1200, canary: 400 });
    assert.deepEqual(
      j.checks.map((c) => [c.check, c.verdict]),
      [
        ['error_rate', 'pass'],
        ['ttft', 'pass'],
        ['tpot', 'pass'],
        ['rating', 'pass'],
        ['thumbs_up', 'pass'],
      ],
      j.checks.map((c) => c.reason).join('\n'),
    );
    assert.equal(j.verdict, 'pass');
    for (const c of j.checks) {
      assert.equal(c.test, 'non_inferiority');
      assert.ok(c.worse_by_lower <= c.worse_by && c.worse_by <= c.worse_by_upper, c.reason);
      assert.ok(c.worse_by_upper < c.threshold, c.reason);
      assert.equal(c.confidence, 0.95);
      assert.equal(c.min_samples, 20);
      assert.match(
        c.reason,
        /^canary .* vs stable .* \(n \d+\/\d+\): at (most|least) .* at 95%, margin .*: pass$/,
      );
    }
    const ttft = j.checks.find((c) => c.check === 'ttft');
    assert.ok(ttft !== undefined);
    // The latency threshold is the margin times stable's mean, in ms.
    assert.ok(Math.abs(ttft.threshold - 0.25 * ttft.stable.mean) < 1e-9);
    assert.ok(ttft.stable.mean > 35 && ttft.stable.mean < 45, `stable ttft ${ttft.stable.mean}`);
    // Failed requests have no latency or feedback values.
    assert.equal(ttft.stable.n, j.checks.find((c) => c.check === 'rating')?.stable.n);
    assert.ok(ttft.stable.n < 1200);
  });

  it('fails a canary with 30% errors against 0%', () => {
    const rand = seeded(2);
    const records = [
      ...arm(rand, 'stable', { n: 600, errors: 0 }),
      ...arm(rand, 'canary', { n: 100, errors: 0.3 }),
    ];
    const j = judge(records, WINDOW, FULL);
    const errors = j.checks.find((c) => c.check === 'error_rate');
    assert.ok(errors !== undefined);
    assert.equal(errors.verdict, 'fail', errors.reason);
    assert.equal(j.verdict, 'fail');
    assert.equal(errors.stable.mean, 0);
    assert.ok(errors.canary.mean > 0.2);
    assert.ok(errors.worse_by_lower > 0.05);
    assert.match(
      errors.reason,
      /^canary error rate \d+(\.\d)?% vs stable 0% \(n 100\/600\): at least .* points worse at 95%, margin 5 points: fail$/,
    );
  });

  it('stays inconclusive below min_samples, however the values look', () => {
    const rand = seeded(3);
    const records = [
      ...arm(rand, 'stable', { n: 500, errors: 0 }),
      ...arm(rand, 'canary', { n: 12, errors: 0.5 }),
    ];
    const j = judge(records, WINDOW, FULL);
    assert.equal(j.verdict, 'inconclusive');
    for (const c of j.checks) {
      assert.equal(c.verdict, 'inconclusive', c.reason);
      assert.match(c.reason, /fewer than 20 values on the canary, margin .*: inconclusive$/);
    }
  });

  it('judges an idle canary and an empty window inconclusive, with finite evidence', () => {
    const rand = seeded(4);
    for (const records of [arm(rand, 'stable', { n: 300 }), []]) {
      const j = judge(records, WINDOW, FULL);
      assert.equal(j.verdict, 'inconclusive');
      for (const c of j.checks) {
        assert.equal(c.verdict, 'inconclusive');
        assert.equal(c.canary.n, 0);
        // What a decision stores survives JSON (no NaN or Infinity turning into null).
        assert.deepEqual(JSON.parse(JSON.stringify(c)), c);
      }
    }
  });

  it('is inconclusive for a policy without checks', () => {
    const rand = seeded(5);
    const records = [...arm(rand, 'stable', { n: 300 }), ...arm(rand, 'canary', { n: 300 })];
    const j = judge(records, WINDOW, withChecks({}));
    assert.equal(j.verdict, 'inconclusive');
    assert.deepEqual(j.checks, []);
    assert.deepEqual(j.samples, { stable: 300, canary: 300 });
  });

  it('with require_better: equal ratings are inconclusive, clearly better ones pass', () => {
    const policy = withChecks({
      rating: check(0.1, { require_better: true }),
      thumbs_up: check(0.1, { require_better: true }),
    });
    const rand = seeded(6);
    const stable = arm(rand, 'stable', { n: 600, up: 0.5 });
    const equal = judge([...stable, ...arm(rand, 'canary', { n: 300, up: 0.5 })], WINDOW, policy);
    assert.equal(equal.verdict, 'inconclusive');
    for (const c of equal.checks) {
      assert.equal(c.test, 'superiority');
      assert.equal(c.verdict, 'inconclusive', c.reason);
      assert.match(c.reason, /, must be better: inconclusive$/);
    }
    const better = judge([...stable, ...arm(rand, 'canary', { n: 300, up: 0.8 })], WINDOW, policy);
    assert.equal(better.verdict, 'pass', better.checks.map((c) => c.reason).join('\n'));
    for (const c of better.checks) {
      assert.ok(c.worse_by_upper < 0, c.reason);
      assert.match(c.reason, /: at least .* better at 95%, margin .*, must be better: pass$/);
    }
    const worse = judge([...stable, ...arm(rand, 'canary', { n: 300, up: 0.2 })], WINDOW, policy);
    assert.equal(worse.verdict, 'fail');
    for (const c of worse.checks) assert.equal(c.verdict, 'fail', c.reason);
  });

  it('ignores records of another rollout, outside the window, without a rollout or a completion', () => {
    const rand = seeded(7);
    const first = nextSeq;
    const counted = [...arm(rand, 'stable', { n: 50 }), ...arm(rand, 'canary', { n: 30 })];
    const from = Math.min(...counted.map((r) => Date.parse(r.completion?.started_at ?? '')));
    const to = Math.max(...counted.map((r) => Date.parse(r.completion?.started_at ?? '')));
    const others = [
      // Another rollout's requests, at the same times.
      ...arm(rand, 'canary', { n: 40, errors: 1 }, 'ro-other', (i) => first + i),
      // Started after the window (their seqs are later than every counted record's).
      ...arm(rand, 'canary', { n: 40, errors: 1 }),
      rec(nextSeq++, { rollout: undefined, error: { code: 'internal', message: 'x' } }),
      rec(nextSeq++, null, { rating: 0 }),
    ];
    const before = rec(0, {
      rollout: { id: ROLLOUT, arm: 'canary' },
      started_at: new Date(from - 1).toISOString(),
    });
    const j = judge([before, ...counted, ...others], { id: ROLLOUT, from, to }, FULL);
    assert.deepEqual(j.samples, { stable: 50, canary: 30 });
    const alone = judge(counted, { id: ROLLOUT, from, to }, FULL);
    assert.deepEqual(j, alone);
  });

  it('judges tpot per token after the first, so longer answers at the same speed are not slower', () => {
    const rand = seeded(8);
    const policy = withChecks({ tpot: check(0.1) });
    const records = [
      ...arm(rand, 'stable', { n: 400, maxTokens: 8 }),
      ...arm(rand, 'canary', { n: 400, maxTokens: 64 }),
    ];
    const j = judge(records, WINDOW, policy);
    assert.equal(j.verdict, 'pass', j.checks[0]?.reason);
    const slow = judge([...records, ...arm(rand, 'canary', { n: 400, tpot: 12 })], WINDOW, policy);
    assert.equal(slow.verdict, 'fail', slow.checks[0]?.reason);
  });

  it('bounds latency as canary − (1 + m)·stable, with the error of that combination', () => {
    const result = judgeCheck(
      'ttft',
      check(0.25, { confidence: 0.99 }),
      { n: 52, mean: 41.2, sd: 5 },
      { n: 310, mean: 39.8, sd: 6 },
    );
    // D = 41.2 − 1.25 × 39.8 = −8.55, se = √(25/52 + 1.5625 × 36/310), z₀.₉₉ = 2.3263;
    // worse_by bounds are D's plus the threshold 0.25 × 39.8 = 9.95.
    const se = Math.sqrt(25 / 52 + (1.5625 * 36) / 310);
    const z = 2.3263478740408408;
    assert.ok(Math.abs(result.worse_by - 1.4) < 1e-9);
    assert.ok(Math.abs(result.threshold - 9.95) < 1e-9);
    assert.ok(Math.abs(result.worse_by_upper - (-8.55 + z * se + 9.95)) < 1e-9);
    assert.ok(Math.abs(result.worse_by_lower - (-8.55 - z * se + 9.95)) < 1e-9);
    assert.equal(result.verdict, 'pass');
    assert.equal(
      result.reason,
      'canary ttft 41.2 ms vs stable 39.8 ms (n 52/310): at most 8.3% slower at 99%, margin 25%: pass',
    );
    // The same numbers with stable's sd counted once (k = 1) would be narrower: the test is stricter.
    const k1 = z * Math.sqrt(25 / 52 + 36 / 310);
    assert.ok(result.worse_by_upper - result.worse_by > k1);
  });

  it('words an inconclusive check with both bounds', () => {
    const result = judgeCheck(
      'error_rate',
      check(0.02),
      { n: 100, mean: 0.03, sd: 0 },
      { n: 100, mean: 0.02, sd: 0 },
    );
    assert.equal(result.verdict, 'inconclusive');
    assert.match(
      result.reason,
      /^canary error rate 3% vs stable 2% \(n 100\/100\): between \d+(\.\d)? points better and \d+(\.\d)? points worse at 95%, margin 2 points: inconclusive$/,
    );
  });
});

describe('check values', () => {
  const event = (overrides: Partial<CompletionEvent>): CollectedRecord => rec(1, overrides);

  it('counts serving faults and failovers as errors, the client’s outcomes not at all', () => {
    const error = (code: NonNullable<CompletionEvent['error']>['code']): CollectedRecord =>
      event({ finish_reason: undefined, error: { code, message: code } });
    for (const code of ['internal', 'engine_failed', 'unavailable', 'version_unavailable'] as const) {
      assert.equal(checkValue('error_rate', error(code)), 1, code);
    }
    for (const code of [
      'busy',
      'cancelled',
      'deadline_exceeded',
      'invalid_request',
      'rate_limited',
      'unauthorized',
      'forbidden',
      'model_not_found',
    ] as const) {
      assert.equal(checkValue('error_rate', error(code)), undefined, code);
    }
    assert.equal(checkValue('error_rate', event({})), 0);
    assert.equal(checkValue('error_rate', event({ finish_reason: 'cancelled' })), undefined);
    const failedOver = event({ failovers: [{ attempt: 1, replica: 'r1', reason: 'unavailable' }] });
    assert.equal(errorValue(failedOver.completion as CompletionEvent), 1);
    assert.equal(checkValue('ttft', failedOver), 10, 'a failed-over success still has its latency');
  });

  it('takes latency from completed requests, tpot only with two tokens or more', () => {
    assert.equal(checkValue('ttft', event({ ttft_ms: 12 })), 12);
    assert.equal(checkValue('ttft', event({ ttft_ms: undefined })), undefined);
    assert.equal(checkValue('ttft', event({ finish_reason: 'cancelled' })), undefined);
    assert.equal(checkValue('tpot', event({ ttft_ms: 10, duration_ms: 50, completion_tokens: 5 })), 10);
    assert.equal(checkValue('tpot', event({ completion_tokens: 1 })), undefined);
    assert.equal(
      checkValue('tpot', event({ finish_reason: undefined, error: { code: 'internal', message: 'x' } })),
      undefined,
    );
  });

  it('takes feedback where there is some', () => {
    assert.equal(checkValue('rating', rec(1, {}, { rating: 0.4, thumbs: undefined })), 0.4);
    assert.equal(checkValue('thumbs_up', rec(1, {}, { rating: 0.4, thumbs: undefined })), undefined);
    assert.equal(checkValue('thumbs_up', rec(1, {}, { rating: 0, thumbs: 'down' })), 0);
    assert.equal(checkValue('thumbs_up', rec(1, {}, { rating: 1, thumbs: 'up' })), 1);
    assert.equal(checkValue('rating', rec(1)), undefined);
  });
});

describe('falseVerdictBound', () => {
  it('sums α over checks, looks and steps', () => {
    const policy: RolloutPolicy = { ...FULL, checks: { ...FULL.checks }, max_looks: 3 };
    for (const c of Object.values(policy.checks)) c.confidence = 0.99;
    const b = falseVerdictBound(policy, 3);
    assert.ok(Math.abs(b.perLook - 0.05) < 1e-12);
    assert.ok(Math.abs(b.total - 0.45) < 1e-12);
    assert.equal(b.falsePassTotal, 0);
    assert.match(b.explain, /× 3 looks × 3 steps = 0\.45/);
    assert.equal(falseVerdictBound(policy, 100).total, 1);
    assert.equal(falseVerdictBound(withChecks({}), 3).total, 0);
  });

  it('bounds a false pass of equal arms when a check requires better', () => {
    const policy = withChecks({
      error_rate: check(0.02, { confidence: 0.999 }),
      rating: check(0.1, { require_better: true, confidence: 0.99 }),
    });
    const b = falseVerdictBound(policy, 2);
    assert.ok(Math.abs(b.perLook - 0.011) < 1e-12);
    assert.ok(Math.abs(b.falsePassPerLook - 0.01) < 1e-12);
    assert.ok(Math.abs(b.falsePassTotal - 0.06) < 1e-12);
    assert.match(b.explain, /false pass/);
  });
});

describe('false verdicts on equal arms (seeded Monte Carlo: deterministic)', () => {
  const TRIALS = 2000;

  /**
   * For each policy, the share of trials whose verdict at any of `looks` growing windows is
   * `bad` (every policy judges the same trials).
   */
  function rates(
    policies: RolloutPolicy[],
    spec: ArmSpec,
    looks: number,
    bad: 'fail' | 'pass',
    seed: number,
  ): number[] {
    const rand = seeded(seed);
    const wrong = policies.map(() => 0);
    for (let t = 0; t < TRIALS; t++) {
      // The arms interleave in time, 3 stable to 1 canary, as a 25% step serves them.
      const records = [
        ...arm(
          rand,
          'stable',
          { ...spec, n: spec.n * 3 },
          ROLLOUT,
          (i) => Math.floor(i / 3) * 4 + (i % 3) + 1,
        ),
        ...arm(rand, 'canary', spec, ROLLOUT, (i) => i * 4 + 4),
      ];
      const started = records.map((r) => Date.parse(r.completion?.started_at ?? ''));
      const start = Math.min(...started);
      const end = Math.max(...started);
      policies.forEach((policy, p) => {
        for (let look = 1; look <= looks; look++) {
          const to = start + ((end - start) * look) / looks;
          if (judge(records, { id: ROLLOUT, from: start, to }, policy).verdict === bad) {
            wrong[p] = (wrong[p] ?? 0) + 1;
            break;
          }
        }
      });
    }
    return wrong.map((w) => w / TRIALS);
  }

  it('false-fails no more often than falseVerdictBound says, at its policy', () => {
    // Small arms near min_samples, where the normal approximations are weakest.
    const policy: RolloutPolicy = {
      ...withChecks({ error_rate: check(0.05), ttft: check(0.2), tpot: check(0.2), rating: check(0.1) }),
      max_looks: 2,
    };
    const bound = falseVerdictBound(policy, 1);
    const [observed] = rates([policy], { n: 60, errors: 0.05 }, 2, 'fail', 11);
    // Observed 0.0045 with this seed: the margins make the bound very conservative.
    assert.ok(Math.abs(bound.total - 0.4) < 1e-12);
    assert.ok(
      observed !== undefined && observed <= bound.total,
      `observed ${observed} > bound ${bound.total}`,
    );
  });

  it('each fail rule errs about α at margin 0 (the bound is not anti-conservative)', () => {
    // With margin 0 equal arms sit on the threshold: a check's false-fail rate is its α, give
    // or take the normal approximation; 2000 trials measure it to ±0.007 (one sd at α = 0.1).
    const names = ['error_rate', 'ttft', 'rating'] as const;
    const policies = names.map((name) => ({
      ...withChecks({ [name]: check(0, { confidence: 0.9 }) }),
      max_looks: 1,
    }));
    // Observed 0.102, 0.0955 and 0.091 with this seed.
    const observed = rates(policies, { n: 60, errors: 0.1 }, 1, 'fail', 12);
    for (const [i, name] of names.entries()) {
      const rate = observed[i] ?? Number.NaN;
      assert.ok(rate <= 0.1 + 0.02, `${name}: observed ${rate} at α 0.1`);
      assert.ok(rate >= 0.1 / 2, `${name}: observed ${rate}, the test is far from its level`);
    }
  });

  it('falsely passes a must-be-better check no more often than falsePassTotal', () => {
    const policy = { ...withChecks({ thumbs_up: check(0.1, { require_better: true }) }), max_looks: 2 };
    const bound = falseVerdictBound(policy, 1);
    // Observed 0.08 with this seed: with no margin to clear, a superiority pass errs at about α a look.
    const [observed] = rates([policy], { n: 60 }, 2, 'pass', 13);
    assert.ok(
      observed !== undefined && observed <= bound.falsePassTotal,
      `observed ${observed} > bound ${bound.falsePassTotal}`,
    );
  });
});
