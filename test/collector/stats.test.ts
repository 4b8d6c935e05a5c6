import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nearestRank, summarize } from '../../src/collector/percentiles.ts';
import { versionStats } from '../../src/collector/stats.ts';
import { rec } from './records.ts';

describe('nearest-rank percentiles', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);

  it('picks the smallest sample with at least p% at or below it', () => {
    const ten = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    assert.equal(nearestRank(ten, 50), 5);
    assert.equal(nearestRank(ten, 90), 9);
    assert.equal(nearestRank(ten, 99), 10);
    assert.equal(nearestRank([42], 50), 42);
    assert.equal(nearestRank([], 50), null);
  });

  it('computes ranks in integers (0.07 × 100 is 7.000000000000001 in floats)', () => {
    assert.equal(nearestRank(hundred, 7), 7);
    assert.equal(nearestRank(hundred, 57), 57);
  });

  it('summarises samples in any order, and nulls without samples', () => {
    assert.deepEqual(summarize([30, 10, 20]), { p50: 20, p90: 30, p99: 30, count: 3 });
    assert.deepEqual(summarize([]), { p50: null, p90: null, p99: null, count: 0 });
  });
});

describe('versionStats', () => {
  it('counts every request, completed ones, and the others by code', () => {
    const records = [
      rec(1),
      rec(2, { finish_reason: 'length' }),
      rec(3),
      rec(4, { finish_reason: undefined, error: { code: 'busy', message: 'full' } }),
      rec(5, { final: false, finish_reason: undefined, error: { code: 'unavailable', message: 'draining' } }),
      rec(6, { finish_reason: undefined, error: { code: 'unavailable', message: 'no replica' } }),
      rec(7, { finish_reason: 'cancelled' }),
      rec(8, { finish_reason: undefined }),
      // An error wins over a finish reason that came with it.
      rec(9, { finish_reason: 'stop', error: { code: 'deadline_exceeded', message: 'late' } }),
    ];
    const [v1, ...rest] = versionStats(records);
    assert.equal(rest.length, 0);
    assert.equal(v1?.requests, 9);
    assert.equal(v1?.completed, 3);
    assert.deepEqual(v1?.errors, { busy: 1, cancelled: 1, deadline_exceeded: 1, unavailable: 2, unknown: 1 });
    assert.deepEqual(Object.keys(v1?.errors ?? {}), [
      'busy',
      'cancelled',
      'deadline_exceeded',
      'unavailable',
      'unknown',
    ]);
    assert.equal(v1?.error_rate, 6 / 9);
  });

  it('reports latency percentiles of completed requests on known samples', () => {
    const records = [
      ...Array.from({ length: 10 }, (_, i) =>
        rec(i + 1, { duration_ms: (i + 1) * 100, ttft_ms: i + 1, completion_tokens: 11 }),
      ),
      // Refusals are fast: they must not pull the percentiles down.
      rec(20, {
        finish_reason: undefined,
        error: { code: 'busy', message: 'full' },
        duration_ms: 0,
        ttft_ms: 0,
      }),
      // One token: a TTFT and a duration, no time per output token.
      rec(21, { duration_ms: 2000, ttft_ms: 100, completion_tokens: 1 }),
      // No token at all: a duration only.
      rec(22, { duration_ms: 3000, ttft_ms: undefined, completion_tokens: 0 }),
    ];
    const [s] = versionStats(records);
    assert.deepEqual(s?.latency_ms.duration, { p50: 600, p90: 2000, p99: 3000, count: 12 });
    assert.deepEqual(s?.latency_ms.ttft, { p50: 6, p90: 10, p99: 100, count: 11 });
    // (duration − ttft) / (tokens − 1) = (100k − k) / 10 = 9.9k for k = 1..10
    const tpot = s?.latency_ms.tpot;
    assert.equal(tpot?.count, 10);
    assert.ok(Math.abs((tpot?.p50 ?? NaN) - 49.5) < 1e-9, `p50 ${tpot?.p50}`);
    assert.ok(Math.abs((tpot?.p90 ?? NaN) - 89.1) < 1e-9, `p90 ${tpot?.p90}`);
    assert.ok(Math.abs((tpot?.p99 ?? NaN) - 99) < 1e-9, `p99 ${tpot?.p99}`);
  });

  it('nulls the percentiles of a version with no completed request', () => {
    const [s] = versionStats([rec(1, { finish_reason: 'cancelled' })]);
    assert.equal(s?.completed, 0);
    assert.equal(s?.error_rate, 1);
    assert.deepEqual(s?.latency_ms.duration, { p50: null, p90: null, p99: null, count: 0 });
    assert.deepEqual(s?.latency_ms.ttft, { p50: null, p90: null, p99: null, count: 0 });
  });

  it('groups by model and version, sorted, with `unknown` for a missing version', () => {
    const records = [
      rec(1, { model: 'zeta', model_version: 'v1' }),
      rec(2, { model: 'alpha', model_version: 'v2' }),
      rec(3, { model: 'alpha', model_version: undefined }),
      rec(4, { model: 'alpha', model_version: 'v1' }),
      rec(5, { model: 'alpha', model_version: 'v2' }),
    ];
    const stats = versionStats(records);
    assert.deepEqual(
      stats.map((s) => [s.model, s.version, s.requests]),
      [
        ['alpha', 'unknown', 1],
        ['alpha', 'v1', 1],
        ['alpha', 'v2', 2],
        ['zeta', 'v1', 1],
      ],
    );
  });

  it('sums tokens over every request, errors included', () => {
    const [s] = versionStats([
      rec(1, { prompt_tokens: 7, completion_tokens: 3 }),
      rec(2, {
        prompt_tokens: 5,
        completion_tokens: 2,
        finish_reason: undefined,
        error: { code: 'internal', message: 'x' },
      }),
    ]);
    assert.deepEqual(s?.tokens, { prompt: 12, completion: 5 });
  });

  it('counts joined feedback; feedback waiting for its completion is in no version', () => {
    const records = [
      rec(1, {}, { thumbs: 'up', rating: 1 }),
      rec(2, {}, { thumbs: 'down', rating: 0, correction: 'better' }),
      rec(3, {}, { thumbs: undefined, rating: 0.5 }),
      rec(4),
      rec(5, null, { thumbs: 'up', rating: 1 }),
    ];
    const stats = versionStats(records);
    assert.equal(stats.length, 1);
    assert.equal(stats[0]?.requests, 4);
    assert.deepEqual(stats[0]?.feedback, {
      count: 3,
      rating_mean: 0.5,
      thumbs_up: 1,
      thumbs_down: 1,
      corrections: 1,
    });
    assert.deepEqual(versionStats([rec(1)])[0]?.feedback, {
      count: 0,
      rating_mean: null,
      thumbs_up: 0,
      thumbs_down: 0,
      corrections: 0,
    });
  });

  it('gives the same document whatever order the records come in', () => {
    const records = [
      rec(1, { duration_ms: 30 }, { rating: 0.1, thumbs: undefined }),
      rec(2, { model_version: 'v2' }, { rating: 0.7, thumbs: undefined }),
      rec(3, { duration_ms: 10 }, { rating: 0.2, thumbs: undefined }),
      rec(4, { finish_reason: 'cancelled' }),
      rec(5, { duration_ms: 20 }, { rating: 0.3, thumbs: undefined }),
    ];
    const forward = JSON.stringify(versionStats(records));
    assert.equal(JSON.stringify(versionStats([...records].reverse())), forward);
    assert.equal(
      JSON.stringify(versionStats([records[2]!, records[0]!, records[4]!, records[3]!, records[1]!])),
      forward,
    );
    assert.deepEqual(versionStats([]), []);
  });
});
