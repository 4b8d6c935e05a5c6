/**
 * The chaos report on a hand-built history: router log lines become events, detection and
 * recovery per request from them, latency and throughput per window, the SVG and the markdown;
 * and each planted fault of the runner's self-test gets the verdict it must.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { collectEvents, FAILOVER, FAILOVER_MESSAGE, parseActorLog } from '../../chaos/events.ts';
import { checkHistory } from '../../chaos/history/checker.ts';
import type { ChunkRecord, History, Operation } from '../../chaos/history/types.ts';
import { plant, PLANTS, type PlantKind } from '../../chaos/plant.ts';
import { renderSvg, throughputBins } from '../../chaos/report-svg.ts';
import { scenarioMarkdown, summary } from '../../chaos/report.ts';
import { faultTimings, faultWindows, quantile, windowStats } from '../../chaos/timings.ts';

const T0 = 1_000_000;
const REF = [11, 12, 13, 14];
const text = (ids: readonly number[]): string => ids.map((t) => `<${t}>`).join('');

/** A greedy request invoked at `at`, one token per chunk every `gap` ms, ended ok 10 ms after its last. */
function op(id: string, at: number, gap: number, over: Partial<Operation> = {}): Operation {
  const chunks: ChunkRecord[] = REF.map((t, seq) => ({
    seq,
    tokenIds: [t],
    text: text([t]),
    at: at + gap * (seq + 1),
  }));
  return {
    id,
    client: 'load1',
    via: 'nats',
    request: { model: 'tiny', prompt: 'p', maxTokens: REF.length, temperature: 0 },
    invokedAt: at,
    deadline: at + 30_000,
    chunks,
    outcome: {
      kind: 'ok',
      finishReason: 'length',
      completionTokens: REF.length,
      at: at + gap * REF.length + 10,
    },
    reference: { tokenIds: REF, text: text(REF), finishReason: 'length' },
    ...over,
  };
}

/** Two requests before the fault; r2 and r3 run on rp2 when it is killed at T0+1000 and fail over. */
function history(): History {
  const r3 = op('load1-3', T0 + 800, 125);
  return {
    scenario: 'kill-replica',
    seed: 7,
    startedAt: T0 - 5000,
    endedAt: T0 + 3000,
    faults: [
      {
        name: 'SIGKILL',
        target: 'replica rp2 (pid 42)',
        startedAt: T0 + 1000,
        endedAt: T0 + 1010,
        verified: 'pid gone (ESRCH)',
      },
    ],
    operations: [
      op('load1-1', T0, 50),
      op('load1-2', T0 + 900, 300),
      r3,
      op('load1-4', T0 + 2000, 20, {
        outcome: { kind: 'error', code: 'unavailable', message: 'x', at: T0 + 2100 },
      }),
    ],
    checks: [],
    events: [
      {
        at: T0 + 1150,
        actor: 'router rt1',
        what: FAILOVER,
        requestId: 'load1-2',
        replica: 'rp2',
        reason: 'unavailable',
      },
      {
        at: T0 + 1250,
        actor: 'router rt2',
        what: FAILOVER,
        requestId: 'load1-3',
        replica: 'rp2',
        reason: 'replica_dead',
      },
      // Another replica's failover, and one before the fault: neither is this fault's.
      {
        at: T0 + 1300,
        actor: 'router rt1',
        what: FAILOVER,
        requestId: 'load1-1',
        replica: 'rp1',
        reason: 'unavailable',
      },
      {
        at: T0 + 500,
        actor: 'router rt1',
        what: FAILOVER,
        requestId: 'load1-1',
        replica: 'rp2',
        reason: 'unavailable',
      },
    ],
  };
}

describe('chaos report', () => {
  it('turns warn-level pino lines into events and skips the rest', () => {
    const log = [
      'progress on stdout',
      JSON.stringify({ level: 30, time: 5, role: 'router', actor: 'rt1', msg: 'router ready' }),
      JSON.stringify({
        level: 40,
        time: 9,
        role: 'router',
        actor: 'rt1',
        msg: FAILOVER_MESSAGE,
        requestId: 'a',
        replica: 'rp1',
        reason: 'replica_dead',
      }),
      JSON.stringify({ level: 50, time: 7, msg: 'boom' }),
      '{not json',
    ].join('\n');
    assert.deepEqual(parseActorLog(log, 'router rt1'), [
      { at: 9, actor: 'router rt1', what: FAILOVER, requestId: 'a', replica: 'rp1', reason: 'replica_dead' },
      { at: 7, actor: 'router rt1', what: 'boom' },
    ]);
    assert.deepEqual(
      collectEvents([{ role: 'router', id: 'rt1', log }]).map((e) => e.at),
      [7, 9],
    );
  });

  it('measures detection and recovery per request failed over off the faulted actor', () => {
    const [t] = faultTimings(history());
    assert.equal(t?.actor, 'rp2');
    // load1-2: next token after T0+1150 is at T0+1200; load1-3: after T0+1250 at T0+1300.
    assert.deepEqual(t?.requests, [
      { id: 'load1-2', detectionMs: 150, recoveryMs: 200 },
      { id: 'load1-3', detectionMs: 250, recoveryMs: 300 },
    ]);
    assert.equal(quantile([5, 1, 3], 0.5), 3);
    assert.equal(quantile([], 0.5), undefined);
  });

  it('splits latency and throughput into before, during (to the last resumption) and after', () => {
    const h = history();
    const windows = faultWindows(h);
    assert.deepEqual(
      windows.map((w) => [w.name, w.from - T0, w.to - T0]),
      [
        ['before', 0, 1000],
        ['during', 1000, 1300],
        ['after', 1300, 2110],
      ],
    );
    const [before, during, after] = windowStats(h, windows);
    // load1-1 ends at T0+210 (before); load1-3 at T0+1310 and load1-2 at T0+2110 (after).
    assert.equal(before?.completed, 1);
    assert.equal(during?.completed, 0);
    assert.equal(after?.completed, 2);
    assert.ok((during?.tokensPerS ?? 0) > 0);
    assert.equal(after?.latencyP99Ms, 1210);
  });

  it('has no "after" when the fault outlasts the load, and no rates for a window too short', () => {
    const h = history();
    h.faults = [{ ...h.faults[0]!, endedAt: T0 + 10_000 }];
    const windows = faultWindows(h);
    assert.deepEqual(
      windows.map((w) => w.name),
      ['before', 'during'],
    );
    h.faults = [{ ...h.faults[0]!, startedAt: T0 + 100 }];
    const [before] = windowStats(h, faultWindows(h));
    assert.equal(before?.tokensPerS, undefined);
    assert.equal(before?.completed, 0);
  });

  it('draws an SVG with axes, the fault shaded and errors in red', () => {
    const svg = renderSvg(history());
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.match(svg, /time since the load started \(s\)/);
    assert.match(svg, /latency \(s\)/);
    assert.match(svg, /tokens\/s/);
    assert.match(svg, /<rect [^>]*fill="#f4a261"[^>]*><title>SIGKILL on replica rp2 \(pid 42\)<\/title>/);
    assert.match(svg, /stroke="#dc2626"[^>]*><title>load1-4: error unavailable<\/title>/);
    assert.equal((svg.match(/<circle /g) ?? []).length, 3);
    assert.deepEqual(
      throughputBins(history(), T0, T0 + 1500),
      [5, 10], // [T0, T0+1 s): 4 tokens of load1-1, 1 of load1-3; then 5 tokens in half a second
    );
  });

  it('writes the scenario markdown and the summary, skipped scenarios listed with why', () => {
    const h = history();
    const check = checkHistory(h, { allowedErrors: [] });
    const md = scenarioMarkdown({ history: h, invariant: 'Every request completes exactly.' }, check);
    assert.match(md, /Invariant: Every request completes exactly\./);
    assert.match(md, /\| requests sent \| 4 \|/);
    assert.match(
      md,
      /\| SIGKILL \| replica rp2 \(pid 42\) \| pid gone \(ESRCH\) \| 0\.0 s \| 2 \| 150 ms \/ 250 ms \| 200 ms \/ 300 ms \| 0 \|/,
    );
    assert.match(md, /\| during \| 0\.3 s \| 0 \| — \| — \| 10\.0 \| 0\.00 \|/);
    const skipped = { history: { ...h, scenario: 'partition', operations: [] }, skipped: 'not root' };
    const text = summary(7, [{ history: h }, skipped], new Map([['kill-replica', check]]));
    assert.match(text, /\| kill-replica \| FAILED \| 4 \| 3 \|/);
    assert.match(text, /\| partition \| skipped: not root \|/);
    assert.match(text, /\*\*Skipped:\*\* not root/);
  });

  for (const kind of Object.keys(PLANTS) as PlantKind[]) {
    it(`a planted ${kind} gets the verdict ${PLANTS[kind]}`, () => {
      const h = history();
      h.operations = h.operations.slice(0, 3);
      assert.ok(checkHistory(h).ok, 'the unplanted history passes');
      const id = plant(h, kind);
      const result = checkHistory(h);
      assert.equal(result.ok, false);
      assert.equal(result.operations.find((o) => o.id === id)?.verdict, PLANTS[kind]);
      assert.deepEqual(h.planted, { kind, operation: id, expectedVerdict: PLANTS[kind] });
    });
  }
});
