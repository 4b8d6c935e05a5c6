/**
 * The history checker on small hand-built histories: every verdict, the planted faults the chaos
 * suite must catch (a re-sent token, a dropped chunk, a changed token, a dropped end), the
 * mistargeted control, and joining another record to the history.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkFaults, checkHistory, mustMatchReference } from '../../chaos/history/checker.ts';
import { compareFinalOutcome, matchRecords, type FinalOutcomeRecord } from '../../chaos/history/match.ts';
import { summarize } from '../../chaos/history/summary.ts';
import type { ChunkRecord, FaultRecord, History, Operation } from '../../chaos/history/types.ts';

const T0 = 1_000_000;
const REF = [11, 12, 13, 14, 15, 16];
const text = (ids: readonly number[]): string => ids.map((t) => `<${t}>`).join('');

/** Chunks of the given token runs, seq 0.., 10 ms apart, on `attempts[i]` (default 1). */
function chunks(runs: number[][], attempts: number[] = []): ChunkRecord[] {
  return runs.map((tokenIds, seq) => ({
    seq,
    attempt: attempts[seq] ?? 1,
    tokenIds,
    text: text(tokenIds),
    at: T0 + 10 * (seq + 1),
  }));
}

/** A greedy operation that streamed `runs` and ended ok with as many tokens as it delivered. */
function op(id: string, runs: number[][], overrides: Partial<Operation> = {}): Operation {
  const delivered = runs.flat().length;
  return {
    id,
    client: 'load-0',
    via: 'nats',
    request: { model: 'tiny', prompt: 'p', maxTokens: REF.length, temperature: 0 },
    invokedAt: T0,
    deadline: T0 + 1000,
    chunks: chunks(runs),
    outcome: { kind: 'ok', finishReason: 'length', completionTokens: delivered, at: T0 + 100 },
    reference: { tokenIds: REF, text: text(REF), finishReason: 'length' },
    ...overrides,
  };
}

function history(operations: Operation[], faults: FaultRecord[] = []): History {
  return { scenario: 'test', seed: 7, startedAt: T0, endedAt: T0 + 5000, faults, operations };
}

const verified: FaultRecord = {
  name: 'sigstop',
  target: 'replica-1',
  startedAt: T0,
  verified: 'process state T',
};

function verdictOf(o: Operation, allowedErrors: string[] = []): { verdict: string; reason: string } {
  const [check] = checkHistory(history([o]), { allowedErrors }).operations;
  assert.ok(check);
  return check;
}

describe('history checker', () => {
  it('greedy and seeded ≤ 0.7 must match; absent temperature is 1, not greedy', () => {
    assert.equal(mustMatchReference({ model: 'm', temperature: 0 }), true);
    assert.equal(mustMatchReference({ model: 'm', temperature: 0.7, seed: 1 }), true);
    assert.equal(mustMatchReference({ model: 'm', temperature: 0.8, seed: 1 }), false);
    assert.equal(mustMatchReference({ model: 'm', temperature: 0.5 }), false);
    assert.equal(mustMatchReference({ model: 'm', seed: 1 }), false);
    assert.equal(mustMatchReference({ model: 'm' }), false);
  });

  it('a stream equal to its reference is exact, across a resume', () => {
    const o = op('a', [[11, 12], [13], [14, 15, 16]]);
    o.chunks = chunks([[11, 12], [13], [14, 15, 16]], [1, 2, 2]);
    assert.equal(verdictOf(o).verdict, 'exact');
  });

  it('a changed token is completed_different with its index', () => {
    const v = verdictOf(op('a', [[11, 12, 99, 14, 15, 16]]));
    assert.equal(v.verdict, 'completed_different');
    assert.match(v.reason, /index 2/);
  });

  it('an early end, a changed text or a changed finish reason is completed_different', () => {
    assert.equal(verdictOf(op('a', [[11, 12, 13]])).verdict, 'completed_different');
    const t = op('b', [REF]);
    t.chunks[0]!.text = 'changed';
    assert.match(verdictOf(t).reason, /text differs at character 0/);
    const f = op('c', [REF]);
    f.outcome = { kind: 'ok', finishReason: 'stop', completionTokens: REF.length, at: T0 + 100 };
    assert.equal(verdictOf(f).verdict, 'completed_different');
  });

  it('a resumed stream that re-sent one token is duplicated', () => {
    const o = op('a', [
      [11, 12, 13],
      [13, 14, 15, 16],
    ]);
    o.chunks = chunks(
      [
        [11, 12, 13],
        [13, 14, 15, 16],
      ],
      [1, 2],
    );
    const v = verdictOf(o);
    assert.equal(v.verdict, 'duplicated');
    assert.match(v.reason, /tokens 2\.\.2 re-sent at index 3/);
  });

  it('without a reference, a new attempt re-sending the last tokens is duplicated', () => {
    const hot = op('a', [[1, 2], [2], [3]], { request: { model: 'tiny', temperature: 1 } });
    delete hot.reference;
    hot.chunks = chunks([[1, 2], [2], [3]], [1, 2, 2]);
    assert.equal(verdictOf(hot).verdict, 'duplicated');
    // The same repeat within one attempt is sampling, not a resume.
    hot.chunks = chunks([[1, 2], [2], [3]], [1, 1, 1]);
    assert.equal(verdictOf(hot).verdict, 'unchecked');
  });

  it('a chunk delivered twice (repeated seq) is duplicated', () => {
    const o = op('a', [
      [11, 12],
      [13, 14, 15, 16],
    ]);
    o.chunks.push({ ...o.chunks[1]!, at: T0 + 50 });
    assert.equal(verdictOf(o).verdict, 'duplicated');
  });

  it('a lost chunk is a gap, by seq and by tokens', () => {
    const o = op('a', [[11, 12], [13], [14, 15, 16]]);
    o.chunks.splice(1, 1);
    o.outcome = { kind: 'ok', finishReason: 'length', completionTokens: REF.length, at: T0 + 100 };
    const v = verdictOf(o);
    assert.equal(v.verdict, 'gap');
    assert.match(v.reason, /chunk seq 1\.\.1 missing/);
    assert.match(v.reason, /1 reference token\(s\) missing at index 2/);
    assert.match(v.reason, /5 token\(s\) delivered, outcome counts 6/);
  });

  it('hot sampled requests are checked for gaps and duplicates only', () => {
    const hot = op('a', [[1, 2, 3]], { request: { model: 'tiny', temperature: 0.9, seed: 3 } });
    assert.equal(verdictOf(hot).verdict, 'unchecked');
    hot.outcome = { kind: 'ok', finishReason: 'length', completionTokens: 4, at: T0 + 100 };
    assert.equal(verdictOf(hot).verdict, 'gap');
    hot.outcome = { kind: 'ok', finishReason: 'length', completionTokens: 2, at: T0 + 100 };
    assert.equal(verdictOf(hot).verdict, 'duplicated');
  });

  it('no end is lost; no end while still streaming past the deadline is hung; a late end is hung', () => {
    const dropped = op('a', [[11, 12]], { outcome: { kind: 'unknown', at: T0 + 1000 } });
    assert.equal(verdictOf(dropped).verdict, 'lost');
    const open = op('b', [[11, 12]], { outcome: { kind: 'unknown', at: T0 + 3000 } });
    open.chunks[0]!.at = T0 + 2000;
    const v = verdictOf(open);
    assert.equal(v.verdict, 'hung');
    assert.match(v.reason, /1000 ms past its deadline/);
    const late = op('c', [REF]);
    late.outcome = { kind: 'ok', finishReason: 'length', completionTokens: REF.length, at: T0 + 1500 };
    assert.equal(verdictOf(late).verdict, 'hung');
    const slack = checkHistory(history([late]), { deadlineSlackMs: 500 });
    assert.equal(slack.operations[0]?.verdict, 'exact');
  });

  it('an error is allowed only when the scenario allows its code; its tokens are still checked', () => {
    const busy = op('a', [], { outcome: { kind: 'error', code: 'busy', message: 'queue full', at: T0 + 5 } });
    assert.equal(verdictOf(busy, ['busy']).verdict, 'error_allowed');
    assert.equal(verdictOf(busy).verdict, 'error_disallowed');
    const stale = op('b', [[11, 99]], {
      outcome: { kind: 'error', code: 'busy', message: 'x', at: T0 + 50 },
    });
    assert.equal(verdictOf(stale, ['busy']).verdict, 'completed_different');
  });

  it('the mistargeted control: exact operations under an unverified fault fail the run', () => {
    const mistargeted: FaultRecord = { name: 'sigstop', target: 'pid-that-is-not-a-replica', startedAt: T0 };
    const result = checkHistory(history([op('a', [REF]), op('b', [REF])], [verified, mistargeted]));
    assert.equal(result.counts.exact, 2);
    assert.equal(result.ok, false);
    assert.deepEqual(
      checkFaults(history([], [verified, mistargeted])).map((f) => f.verified),
      [true, false],
    );
    assert.match(summarize(result), /faults unverified \| 1 of 2/);
    assert.match(summarize(result), /FAILED/);
    assert.equal(checkHistory(history([op('a', [REF])], [verified])).ok, true);
  });

  it('counts verdicts and errors by code, and summarizes them', () => {
    const ops = [
      op('exact', [REF]),
      op('diff', [[11, 12, 13, 14, 15, 99]]),
      op('busy', [], { outcome: { kind: 'error', code: 'busy', message: 'full', at: T0 + 1 } }),
      op('boom', [], { outcome: { kind: 'error', code: 'internal', message: 'x', at: T0 + 1 } }),
      op('lost', [[11]], { outcome: { kind: 'unknown', at: T0 + 1000 } }),
    ];
    const result = checkHistory(history(ops), { allowedErrors: ['busy'] });
    assert.deepEqual(
      result.operations.map((o) => o.verdict),
      ['exact', 'completed_different', 'error_allowed', 'error_disallowed', 'lost'],
    );
    assert.deepEqual(result.errorsByCode, { busy: 1, internal: 1 });
    assert.equal(result.counts.exact, 1);
    assert.equal(result.ok, false);
    const md = summarize(result);
    assert.match(md, /\| requests sent \| 5 \|/);
    assert.match(md, /\| errors by code \| busy ×1, internal ×1 \|/);
    assert.match(md, /`diff` completed_different: first differing token at index 5/);
    assert.doesNotMatch(md, /`exact`/);
  });

  it('matchRecords reports missing, extra, repeated and mismatched records', () => {
    const ops = [
      op('a', [REF]),
      op('b', [], { outcome: { kind: 'error', code: 'busy', message: 'full', at: T0 + 1 } }),
      op('c', [REF]),
      op('d', [REF]),
    ];
    const records: FinalOutcomeRecord[] = [
      { requestId: 'a', outcome: 'ok', completionTokens: REF.length },
      { requestId: 'b', outcome: 'error', code: 'internal' },
      { requestId: 'c', outcome: 'ok', completionTokens: 5 },
      { requestId: 'c', outcome: 'ok' },
      { requestId: 'z', outcome: 'ok' },
    ];
    const m = matchRecords(history(ops), records, (r) => r.requestId, compareFinalOutcome);
    assert.equal(m.matched, 1);
    assert.deepEqual(m.missing, ['d']);
    assert.deepEqual(m.extra, ['z']);
    assert.deepEqual(m.repeated, ['c']);
    assert.deepEqual(m.mismatched, [
      { id: 'b', reason: 'error internal, history busy' },
      { id: 'c', reason: '5 tokens, history 6' },
    ]);
  });
});

describe('history checker, HTTP operations (compared by text)', () => {
  const REF_TEXT = text(REF);
  /** An HTTP stream whose SSE events carried `texts`, one attempt per entry of `attempts`. */
  function httpOp(texts: string[][], overrides: Partial<Operation> = {}): Operation {
    const recorded: ChunkRecord[] = texts.flatMap((events, a) =>
      events.map((t, seq) => ({ seq, attempt: a + 1, tokenIds: [], text: t, at: T0 + 10 * (seq + 1) })),
    );
    return op('h', [], {
      via: 'http-stream',
      chunks: recorded,
      outcome: { kind: 'ok', finishReason: 'length', completionTokens: REF.length, at: T0 + 100 },
      ...overrides,
    });
  }
  const halves = [REF_TEXT.slice(0, 10), REF_TEXT.slice(10), ''];

  it('a stream whose text equals the reference is exact, without token ids', () => {
    assert.equal(verdictOf(httpOp([halves])).verdict, 'exact');
  });

  it('a retry that restarts from scratch is exact when the cut attempt was a prefix', () => {
    const v = verdictOf(httpOp([[REF_TEXT.slice(0, 7)], halves]));
    assert.equal(v.verdict, 'exact');
    assert.match(v.reason, /1 restarted attempt/);
  });

  it('a cut attempt whose text left the reference is different', () => {
    assert.equal(verdictOf(httpOp([['<11><99>'], halves])).verdict, 'completed_different');
  });

  it('a repeated SSE event within an attempt is duplicated (by seq and by text)', () => {
    const recorded = httpOp([halves]).chunks;
    const again = { ...recorded[0]!, at: T0 + 15 };
    assert.equal(
      verdictOf(httpOp([], { chunks: [recorded[0]!, again, ...recorded.slice(1)] })).verdict,
      'duplicated',
    );
    const v = verdictOf(httpOp([[halves[0]!, halves[0]!, halves[1]!]]));
    assert.equal(v.verdict, 'duplicated');
  });

  it('a dropped event is a gap; a usage count off the reference is caught', () => {
    assert.equal(verdictOf(httpOp([[halves[0]!, REF_TEXT.slice(14)]])).verdict, 'gap');
    const counted = {
      kind: 'ok' as const,
      finishReason: 'length',
      completionTokens: REF.length + 1,
      at: T0 + 100,
    };
    assert.equal(verdictOf(httpOp([halves], { outcome: counted })).verdict, 'duplicated');
  });

  it('a changed text, or a hot request restarted with other text, is judged as it should be', () => {
    assert.equal(verdictOf(httpOp([[REF_TEXT.replace('<13>', '<31>')]])).verdict, 'completed_different');
    const hot = { model: 'tiny', prompt: 'p', temperature: 1 };
    const v = verdictOf(httpOp([['anything'], ['something else']], { request: hot }));
    assert.equal(v.verdict, 'unchecked');
  });

  it('an HTTP error keeps its code; a disallowed one fails', () => {
    const failed = {
      kind: 'error' as const,
      code: 'forbidden',
      message: 'in use',
      httpStatus: 403,
      at: T0 + 100,
    };
    assert.equal(
      verdictOf(httpOp([[REF_TEXT.slice(0, 4)]], { outcome: failed })).verdict,
      'error_disallowed',
    );
  });
});

describe('history checker, model versions (a hot swap)', () => {
  const REF2 = [21, 22, 23, 24, 25, 26];
  const references = {
    '1': { tokenIds: REF, text: text(REF), finishReason: 'length' },
    '2': { tokenIds: REF2, text: text(REF2), finishReason: 'length' },
  };
  /** A NATS stream of `runs` whose chunks each name `versions[i]` (default the first), ending on `ended`. */
  function versioned(runs: number[][], versions: string[], ended: string | undefined): Operation {
    const o = op('v', runs, { references });
    o.chunks = chunks(runs).map((c, i) => ({ ...c, modelVersion: versions[i] ?? versions[0]! }));
    if (o.outcome.kind === 'ok' && ended !== undefined) o.outcome.modelVersion = ended;
    return o;
  }

  it('a request is judged against the reference of the version it ran on, each exact on its own', () => {
    const v1 = verdictOf(
      versioned(
        [
          [11, 12, 13],
          [14, 15, 16],
        ],
        ['1'],
        '1',
      ),
    );
    assert.equal(v1.verdict, 'exact');
    assert.match(v1.reason, /of version 1/);
    const v2 = verdictOf(
      versioned(
        [
          [21, 22, 23],
          [24, 25, 26],
        ],
        ['2'],
        '2',
      ),
    );
    assert.equal(v2.verdict, 'exact');
    assert.match(v2.reason, /of version 2/);
    // Version 1's tokens that say they came from version 2 are not exact.
    assert.equal(verdictOf(versioned([[11, 12, 13, 14, 15, 16]], ['2'], '2')).verdict, 'completed_different');
  });

  it('a version that changed between the pin and the end, or between chunks, is a finding', () => {
    const moved = verdictOf(versioned([[11, 12, 13, 14, 15, 16]], ['1'], '2'));
    assert.equal(moved.verdict, 'completed_different');
    assert.match(moved.reason, /pinned to version 1, completed on version 2/);
    const midway = verdictOf(
      versioned(
        [
          [11, 12, 13],
          [24, 25, 26],
        ],
        ['1', '2'],
        '1',
      ),
    );
    assert.equal(midway.verdict, 'completed_different');
    assert.match(midway.reason, /chunk seq 1 came from version 2/);
  });

  it('a completion on a version without a reference, or naming none, is a finding', () => {
    const unknown = verdictOf(versioned([[31, 32, 33, 34, 35, 36]], ['3'], '3'));
    assert.equal(unknown.verdict, 'completed_different');
    assert.match(unknown.reason, /version 3, which has no reference \(references for 1, 2\)/);
    const unnamed = op('n', [[11, 12, 13, 14, 15, 16]], { references });
    const v = verdictOf(unnamed);
    assert.equal(v.verdict, 'completed_different');
    assert.match(v.reason, /without naming the model version/);
    // Older histories (no references by version) keep their single reference.
    assert.equal(verdictOf(op('o', [[11, 12, 13, 14, 15, 16]])).verdict, 'exact');
  });

  it("a failed request's tokens are checked against its pinned version; hot ones keep their version too", () => {
    const o = versioned([[21, 22]], ['2'], undefined);
    o.outcome = { kind: 'error', code: 'version_unavailable', message: 'gone', at: T0 + 100 };
    assert.equal(verdictOf(o, ['version_unavailable']).verdict, 'error_allowed');
    const off = versioned([[11, 12]], ['2'], undefined);
    off.outcome = { kind: 'error', code: 'version_unavailable', message: 'gone', at: T0 + 100 };
    assert.equal(verdictOf(off, ['version_unavailable']).verdict, 'completed_different');
    const hot = versioned([[1, 2, 3, 4, 5, 6]], ['1'], '2');
    hot.request = { model: 'tiny', prompt: 'p', temperature: 1 };
    delete hot.references;
    assert.equal(verdictOf(hot).verdict, 'completed_different');
  });

  it('HTTP: each attempt against its own version; the completed one ends on the version it streamed', () => {
    const events = (ids: number[], version: string, attempt: number): ChunkRecord[] =>
      [text(ids.slice(0, 3)), text(ids.slice(3))].map((t, seq) => ({
        seq,
        attempt,
        tokenIds: [],
        text: t,
        at: T0 + 10 * (seq + 1) + attempt,
        modelVersion: version,
      }));
    const httpOp = (recorded: ChunkRecord[], ended: string): Operation =>
      op('h', [], {
        via: 'http-stream',
        chunks: recorded,
        references,
        outcome: {
          kind: 'ok',
          finishReason: 'length',
          completionTokens: REF.length,
          at: T0 + 100,
          modelVersion: ended,
        },
      });
    assert.equal(verdictOf(httpOp(events(REF2, '2', 1), '2')).verdict, 'exact');
    // A cut attempt on version 1, restarted on version 2: each a prefix of its own version's text.
    const restarted = httpOp([events(REF, '1', 1)[0]!, ...events(REF2, '2', 2)], '2');
    assert.equal(verdictOf(restarted).verdict, 'exact');
    const moved = verdictOf(httpOp(events(REF2, '2', 1), '1'));
    assert.equal(moved.verdict, 'completed_different');
    assert.match(moved.reason, /attempt 1: pinned to version 2, completed on version 1/);
    assert.equal(verdictOf(httpOp(events(REF, '2', 1), '2')).verdict, 'completed_different');
  });
});
