/**
 * The pieces of the process and engine scenarios that need no cluster: a control's verdict (it
 * passes only when its mistarget is caught and nothing else broke), reading the routers' verdicts
 * from /metrics, and the cgroup helper refusing what it cannot do.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, it } from 'node:test';
import { CgroupError, CpuLimit } from '../../chaos/cgroup.ts';
import { caughtMistarget } from '../../chaos/control.ts';
import { checkHistory } from '../../chaos/history/checker.ts';
import type { FaultRecord, History, Operation } from '../../chaos/history/types.ts';
import { deadBetween, failoversBetween, readRouter, type RouterReading } from '../../chaos/router-metrics.ts';

const T0 = 1_000_000;
const REF = [1, 2, 3];

function exactOp(id: string): Operation {
  return {
    id,
    client: 'load1',
    via: 'nats',
    request: { model: 'tiny', prompt: 'p', maxTokens: 3, temperature: 0 },
    invokedAt: T0,
    deadline: T0 + 1000,
    chunks: [{ seq: 0, attempt: 1, tokenIds: REF, text: 'abc', at: T0 + 10 }],
    outcome: { kind: 'ok', finishReason: 'length', completionTokens: 3, at: T0 + 20 },
    reference: { tokenIds: REF, text: 'abc', finishReason: 'length' },
  };
}

function history(faults: FaultRecord[], operations: Operation[]): History {
  return {
    scenario: 'mistargeted-control',
    seed: 1,
    startedAt: T0,
    endedAt: T0 + 100,
    faults,
    operations,
    checks: [],
  };
}

const MISTARGET: FaultRecord = { name: 'SIGSTOP (mistargeted)', target: 'replica rp1', startedAt: T0 };

describe('a control scenario (expectCaught)', () => {
  it('is caught when its fault is unverified and every request is exact', () => {
    const check = checkHistory(history([MISTARGET], [exactOp('a')]));
    assert.equal(check.ok, false);
    assert.match(caughtMistarget(check) ?? '', /^caught: unverified fault SIGSTOP \(mistargeted\)/);
  });

  it('is not caught when the fault passed as verified', () => {
    const check = checkHistory(history([{ ...MISTARGET, verified: 'process state T' }], [exactOp('a')]));
    assert.equal(caughtMistarget(check), undefined);
  });

  it('is not caught when a request broke as well (the control proves nothing then)', () => {
    const lost = { ...exactOp('b'), outcome: { kind: 'unknown' as const, at: T0 + 5 } };
    const check = checkHistory(history([MISTARGET], [exactOp('a'), lost]));
    assert.equal(caughtMistarget(check), undefined);
  });
});

describe('router metrics', () => {
  it('reads declared-dead and failovers whatever the order of the labels', async () => {
    const body = [
      '# HELP switchyard_replicas_declared_dead_total x',
      'switchyard_replicas_declared_dead_total{router="rt1"} 2',
      'switchyard_failovers_total{reason="engine_failed",router="rt1"} 3',
      'switchyard_failovers_total{router="rt1",reason="stalled"} 1',
      '',
    ].join('\n');
    const srv = createServer((_, res) => res.end(body));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const { port } = srv.address() as { port: number };
      const reading = await readRouter(`http://127.0.0.1:${port}/metrics`);
      assert.deepEqual(reading, { declaredDead: 2, failovers: { engine_failed: 3, stalled: 1 } });
    } finally {
      srv.close();
    }
  });

  it('sums differences over routers', () => {
    const before = new Map<string, RouterReading>([['rt1', { declaredDead: 1, failovers: { stalled: 1 } }]]);
    const after = new Map<string, RouterReading>([
      ['rt1', { declaredDead: 2, failovers: { stalled: 3 } }],
      ['rt2', { declaredDead: 1, failovers: { engine_failed: 1 } }],
    ]);
    assert.equal(deadBetween(before, after), 2);
    assert.equal(failoversBetween(before, after), 'stalled: 2, engine_failed: 1');
  });
});

describe('cpu cgroup', () => {
  it('refuses a fraction outside (0, 1]', () => {
    assert.throws(() => CpuLimit.limit('sy-test', process.pid, 0), CgroupError);
    assert.throws(() => CpuLimit.limit('sy-test', process.pid, 1.5), CgroupError);
  });
});
