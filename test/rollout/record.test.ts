/**
 * The rollout record's codec: a record survives encode → decode unchanged (in one fixed key
 * order), and every field is checked, with an error that names the key and the field.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidRequestError } from '../../src/errors/errors.ts';
import {
  MAX_CANARY_REPLICAS,
  decodeRolloutRecord,
  decodeRoutingView,
  encodeRolloutRecord,
} from '../../src/rollout/record.ts';
import { MAX_DECISIONS, type RolloutDecision } from '../../src/rollout/types.ts';
import { sampleRollout } from './record-fixture.ts';

const SOURCE = 'SY_ROLLOUTS tiny-gpt2';

function decision(fields: Partial<RolloutDecision> = {}): RolloutDecision {
  const at = '2025-01-01T00:00:00.000Z';
  return {
    at,
    step: 0,
    weight: 30,
    look: 1,
    window: { from: at, to: at },
    verdict: 'inconclusive',
    action: 'wait',
    checks: [
      {
        check: 'error_rate',
        test: 'non_inferiority',
        verdict: 'inconclusive',
        canary: { n: 10, mean: 0, sd: 0 },
        stable: { n: 20, mean: 0.05, sd: 0.2 },
        worse_by: -0.05,
        worse_by_lower: -0.2,
        worse_by_upper: 0.1,
        threshold: 0.02,
        confidence: 0.99,
        min_samples: 100,
        reason: 'too few samples',
      },
    ],
    by: 'collector-a',
    reason: 'waiting',
    ...fields,
  };
}

/** The JSON of a sample record with `patch` applied (a key set to undefined is removed). */
function withFields(patch: Record<string, unknown>): string {
  const o = JSON.parse(new TextDecoder().decode(encodeRolloutRecord(sampleRollout()))) as Record<
    string,
    unknown
  >;
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete o[k];
    else o[k] = v;
  }
  return JSON.stringify(o);
}

function rejects(patch: Record<string, unknown>, field: RegExp): void {
  assert.throws(
    () => decodeRolloutRecord(withFields(patch), SOURCE),
    (err: unknown) =>
      err instanceof InvalidRequestError && err.message.startsWith(`${SOURCE}:`) && field.test(err.message),
    `expected ${JSON.stringify(patch).slice(0, 80)} to be refused naming ${field}`,
  );
}

describe('rollout record codec', () => {
  it('round-trips a record with decisions, a driver and a require_better check', () => {
    const record = sampleRollout({
      driver: 'collector-a',
      decisions: [decision(), decision({ look: 2, verdict: 'pass', action: 'advance' })],
      policy: {
        checks: { rating: { margin: 0.05, min_samples: 30, confidence: 0.99, require_better: true } },
        interval_ms: 1_000,
        min_step_ms: 0,
        max_looks: 5,
        on_inconclusive: 'rollback',
      },
    });
    const bytes = encodeRolloutRecord(record);
    assert.deepEqual(decodeRolloutRecord(bytes, SOURCE), record);
    // Fixed key order: the same record built in another order encodes to the same bytes.
    const shuffled = Object.fromEntries(Object.entries(record).reverse()) as unknown as typeof record;
    assert.deepEqual(encodeRolloutRecord(shuffled), bytes);
    assert.deepEqual(Object.keys(JSON.parse(new TextDecoder().decode(bytes)) as object).slice(0, 5), [
      'v',
      'id',
      'model',
      'stable',
      'canary',
    ]);
  });

  it('decodes the routing view alone, as strictly', () => {
    const view = decodeRoutingView(encodeRolloutRecord(sampleRollout()), SOURCE);
    assert.deepEqual(view, {
      id: 'ro-test-1',
      model: 'tiny-gpt2',
      stable: '1',
      canary: '2',
      weight: 30,
      state: 'running',
    });
    // A decision a newer collector shapes differently does not stop a router from routing.
    assert.equal(decodeRoutingView(withFields({ decisions: [{ odd: true }] }), SOURCE).weight, 30);
    assert.throws(() => decodeRoutingView(withFields({ weight: 101 }), SOURCE), /weight/);
  });

  it('refuses bodies that are not one JSON object', () => {
    for (const body of ['', 'null', '[]', '"x"', '{', new Uint8Array([0xff, 0xfe])]) {
      assert.throws(() => decodeRolloutRecord(body, SOURCE), InvalidRequestError);
    }
  });

  it('refuses every hostile field, naming it', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ v: 2 }, /\bv must be/],
      [{ id: 'a b' }, /\bid must be/],
      [{ id: 'a/b' }, /\bid must be/],
      [{ id: '' }, /\bid must be/],
      [{ id: 'x'.repeat(161) }, /\bid must be/],
      [{ model: 'tiny gpt2' }, /model must be/],
      [{ model: undefined }, /model must be/],
      [{ stable: 'a/b' }, /stable must be/],
      [{ canary: 7 }, /canary must be/],
      [{ canary: '1' }, /canary must be a version other than stable/],
      [{ alias: '' }, /alias must be/],
      [{ steps: [] }, /steps must be/],
      [{ steps: [50, 25, 100] }, /steps\[1\] must be above 50/],
      [{ steps: [30, 30, 100] }, /steps\[1\]/],
      [{ steps: [0, 100] }, /steps\[0\] must be a number in \(0, 100\]/],
      [{ steps: [10, 50] }, /steps must be weights ending with 100/],
      [{ steps: [10, 101] }, /steps\[1\]/],
      [{ steps: Array.from({ length: 21 }, (_, i) => i + 80) }, /steps must have at most 20/],
      [{ steps: ['10', 100] }, /steps\[0\]/],
      [{ step: 2 }, /step must be an integer between 0 and 1/],
      [{ step: -1 }, /step must be/],
      [{ step: 0.5 }, /step must be/],
      [{ weight: -0.01 }, /weight must be a number between 0 and 100/],
      [{ weight: 100.5 }, /weight must be/],
      [{ weight: '30' }, /weight must be/],
      [{ weight: null }, /weight must be/],
      [{ state: 'done' }, /state must be one of/],
      [{ canary_replicas_min: 0 }, /canary_replicas_min must be/],
      [{ canary_replicas: 'rep' }, /canary_replicas must be/],
      [{ canary_replicas: ['ok', 'b.ad'] }, /canary_replicas\[1\] must be/],
      [
        { canary_replicas: Array.from({ length: MAX_CANARY_REPLICAS + 1 }, (_, i) => `r${i}`) },
        /at most 1024/,
      ],
      [{ policy: { checks: {} } }, /policy\.checks names no check/],
      [{ policy: { checks: { speed: { margin: 1 } } } }, /policy\.checks key/],
      [{ policy: 'default' }, /policy must be/],
      [{ by: '' }, /\bby must be/],
      [{ by: 'x'.repeat(257) }, /\bby must be/],
      [{ started_at: 'yesterday' }, /started_at must be an ISO 8601 time/],
      [{ step_started_at: 0 }, /step_started_at must be/],
      [{ updated_at: 'x'.repeat(65) }, /updated_at must be/],
      [{ driver: 'collector a' }, /driver must be/],
      [{ reason: 'x'.repeat(1_025) }, /reason must be/],
      [{ reason: undefined }, /reason must be/],
      [{ decisions: {} }, /decisions must be/],
      [
        { decisions: Array.from({ length: MAX_DECISIONS + 1 }, () => decision()) },
        /decisions must have at most 48/,
      ],
      [{ decisions: [null] }, /decisions\[0\] must be a JSON object/],
      [{ decisions: [{ ...decision(), at: 'soon' }] }, /decisions\[0\]\.at/],
      [{ decisions: [{ ...decision(), verdict: 'maybe' }] }, /decisions\[0\]\.verdict/],
      [{ decisions: [{ ...decision(), action: 'explode' }] }, /decisions\[0\]\.action/],
      [{ decisions: [{ ...decision(), window: { from: 'a' } }] }, /decisions\[0\]\.window\.from/],
      [
        { decisions: [{ ...decision(), checks: Array.from({ length: 6 }, () => decision().checks[0]) }] },
        /checks must have at most 5/,
      ],
      [
        {
          decisions: [
            { ...decision(), checks: [{ ...decision().checks[0], canary: { n: -1, mean: 0, sd: 0 } }] },
          ],
        },
        /decisions\[0\]\.checks\[0\]\.canary\.n/,
      ],
      [
        { decisions: [{ ...decision(), checks: [{ ...decision().checks[0], worse_by: null }] }] },
        /decisions\[0\]\.checks\[0\]\.worse_by must be/,
      ],
      [{ decisions: [{ ...decision(), reason: 'x'.repeat(2_000) }] }, /decisions\[0\]\.reason/],
    ];
    for (const [patch, field] of cases) rejects(patch, field);
  });
});
