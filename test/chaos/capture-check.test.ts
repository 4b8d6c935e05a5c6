/**
 * The capture check on hand-built histories and capture evidence: a clean capture passes; a
 * second final event, a record that disagrees with the client, a record missing where nothing
 * disturbed capture, and one lost by the collector fail; a missing record passes only with its
 * cause (a killed router, a counted drop) where the scenario disturbs capture; HTTP operations
 * join their bridge-scoped request ids; the checker and the summary carry the result.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkCapture, clusterRequestId } from '../../chaos/history/capture.ts';
import { checkHistory } from '../../chaos/history/checker.ts';
import { summarize } from '../../chaos/history/summary.ts';
import type {
  CapturedRecord,
  CaptureEvidence,
  FaultRecord,
  History,
  Operation,
} from '../../chaos/history/types.ts';

const T0 = 1_000_000;

function op(id: string, overrides: Partial<Operation> = {}): Operation {
  return {
    id,
    client: 'load-0',
    via: 'nats',
    request: { model: 'tiny', prompt: 'p', maxTokens: 4, temperature: 1 },
    invokedAt: T0,
    deadline: T0 + 10_000,
    chunks: [{ seq: 0, tokenIds: [1, 2, 3, 4], text: 'abcd', at: T0 + 50 }],
    outcome: { kind: 'ok', finishReason: 'length', completionTokens: 4, at: T0 + 100 },
    ...overrides,
  };
}

/** The record and final-event count a correct capture holds for `o`. */
function recordOf(o: Operation): CapturedRecord {
  const out = o.outcome;
  return out.kind === 'ok'
    ? {
        requestId: clusterRequestId(o),
        completion: 'final',
        finishReason: out.finishReason,
        completionTokens: out.completionTokens,
      }
    : { requestId: clusterRequestId(o), completion: 'final', code: out.kind === 'error' ? out.code : 'x' };
}

function evidence(ops: Operation[], overrides: Partial<CaptureEvidence> = {}): CaptureEvidence {
  return {
    finalEvents: Object.fromEntries(ops.map((o) => [clusterRequestId(o), 1])),
    provisionalEvents: 0,
    records: ops.map(recordOf),
    drops: {},
    caughtUp: true,
    detail: 'test',
    ...overrides,
  };
}

function history(ops: Operation[], capture: CaptureEvidence, faults: FaultRecord[] = []): History {
  return { scenario: 'test', seed: 1, startedAt: T0, endedAt: T0 + 5000, faults, operations: ops, capture };
}

describe('capture check', () => {
  const ops = [op('a'), op('b'), op('h', { via: 'http-stream' })];

  it('passes a capture with one matching record per finished request; HTTP ids are scoped', () => {
    assert.equal(clusterRequestId(ops[2]!), 'anonymous:h');
    const r = checkCapture(history(ops, evidence(ops)))!;
    assert.equal(r.ok, true, r.failures.join('; '));
    assert.equal(r.checked, 3);
    assert.equal(r.recorded, 3);
    assert.deepEqual(r.duplicates, []);
  });

  it('is absent without capture evidence, and ignores unanswered operations', () => {
    const h = history(ops, evidence(ops));
    delete h.capture;
    assert.equal(checkCapture(h), undefined);
    const unanswered = op('u', { outcome: { kind: 'unknown', at: T0 } });
    const r = checkCapture(history([...ops, unanswered], evidence(ops)))!;
    assert.equal(r.ok, true);
    assert.equal(r.checked, 3);
  });

  it('fails a second final event of one request', () => {
    const e = evidence(ops);
    e.finalEvents['a'] = 2;
    const r = checkCapture(history(ops, e))!;
    assert.equal(r.ok, false);
    assert.deepEqual(r.duplicates, ['a']);
  });

  it('fails a record whose token count, finish reason or error code disagrees', () => {
    const e = evidence(ops);
    e.records[0] = { ...e.records[0]!, completionTokens: 3 };
    e.records[1] = { ...e.records[1]!, finishReason: 'cancelled' };
    const r = checkCapture(history(ops, e))!;
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.mismatches.map((m) => m.id),
      ['a', 'b'],
    );
    assert.match(r.mismatches[0]!.reason, /3 tokens, history 4/);
    const busy = op('e', {
      outcome: { kind: 'error', code: 'busy', message: 'full', at: T0 + 100 },
    });
    const eb = evidence([busy]);
    eb.records[0] = { ...eb.records[0]!, code: 'unavailable' };
    assert.match(
      checkCapture(history([busy], eb))!.mismatches[0]!.reason,
      /error unavailable, history error busy/,
    );
  });

  it('fails a missing record where the scenario leaves capture alone, even with drops counted', () => {
    const e = evidence(ops, { drops: { rt1: { buffer_full: 5 } } });
    e.records = e.records.filter((r) => r.requestId !== 'b');
    delete e.finalEvents['b'];
    const r = checkCapture(history(ops, e))!;
    assert.equal(r.ok, false);
    assert.deepEqual(r.missing['counted drop'], ['b']);
  });

  it('passes a missing record with its cause where the scenario disturbs capture', () => {
    const late = op('late', {
      outcome: { kind: 'ok', finishReason: 'length', completionTokens: 4, at: T0 + 9_000 },
    });
    const all = [...ops, late];
    const e = evidence(all, { drops: { rt2: { buffer_full: 1 } } });
    e.records = e.records.filter((r) => r.requestId !== 'a' && r.requestId !== 'late');
    delete e.finalEvents['a'];
    delete e.finalEvents['late'];
    const kill: FaultRecord = {
      name: 'SIGKILL',
      target: 'router rt1 (pid 9)',
      startedAt: T0 + 500,
      verified: 'pid gone',
    };
    const r = checkCapture(history(all, e, [kill]), { mayMiss: true })!;
    assert.equal(r.ok, true, r.failures.join('; '));
    assert.deepEqual(r.missing['router killed'], ['a']);
    assert.deepEqual(r.missing['counted drop'], ['late']);
    // Without the drop nothing explains the late one.
    const noDrop = checkCapture(history(all, { ...e, drops: {} }, [kill]), { mayMiss: true })!;
    assert.equal(noDrop.ok, false);
    assert.deepEqual(noDrop.missing.unexplained, ['late']);
  });

  it('never passes a record lost by the collector (its final event is in the stream)', () => {
    const e = evidence(ops);
    e.records = e.records.filter((r) => r.requestId !== 'anonymous:h');
    const r = checkCapture(history(ops, e), { mayMiss: true })!;
    assert.equal(r.ok, false);
    assert.deepEqual(r.missing['lost by the collector'], ['h']);
  });

  it('passes an allowed error that never reached a router', () => {
    const shed = op('s', {
      via: 'http',
      outcome: { kind: 'error', code: 'busy', message: 'shed', at: T0 + 1 },
    });
    const r = checkCapture(history([...ops, shed], evidence(ops)), { allowedErrors: ['busy'] })!;
    assert.equal(r.ok, true, r.failures.join('; '));
    assert.deepEqual(r.missing['refused before a router'], ['s']);
  });

  it('fails a capture that did not catch up', () => {
    const r = checkCapture(history(ops, evidence(ops, { caughtUp: false, detail: 'consumer busy' })))!;
    assert.equal(r.ok, false);
    assert.match(r.failures.join(';'), /consumer busy/);
  });

  it('fails the checker through the capture, and the summary lists it', () => {
    const e = evidence(ops);
    e.finalEvents['b'] = 2;
    const h = history(ops, e);
    const check = checkHistory(h);
    assert.equal(check.ok, false);
    assert.equal(check.capture?.duplicates.length, 1);
    const text = summarize(check, h.capture);
    assert.match(text, /### capture: FAILED/);
    assert.match(text, /\| duplicates \| 1 \|/);
    assert.match(text, /- capture duplicate: `b`/);
    assert.equal(checkHistory(history(ops, evidence(ops))).ok, true);
  });
});
