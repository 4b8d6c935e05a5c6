/**
 * The overload scenario's leak check: memory kept after a full GC grows it (live heap, or RSS
 * past round 1's peak), V8 sizing its heap for a burst does not; and the memory probe preloaded
 * into a process answers over IPC with figures that show a full GC ran and writes a snapshot.
 */
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { MemoryReport } from '../../chaos/actors.ts';
import { MEMORY_PROBE } from '../../chaos/paths.ts';
import type { RssPeak } from '../../chaos/rss.ts';
import { settledCheck, type Settled } from '../../chaos/settled-memory.ts';

const MiB = 1024;
const NAME = 'bridge br1';

function settled(heapUsedMiB: number, rssMiB: number): Map<string, Settled> {
  return new Map([
    [
      NAME,
      {
        rssKiB: rssMiB * MiB,
        heapUsedKiB: heapUsedMiB * MiB,
        heapTotalKiB: 60 * MiB,
        newSpaceKiB: 32 * MiB,
        externalKiB: 3 * MiB,
      },
    ],
  ]);
}

function peak(rssMiB: number): Map<string, RssPeak> {
  return new Map([[NAME, { peakRssKiB: rssMiB * MiB, hwmKiB: rssMiB * MiB, cpuCores: 0.1 }]]);
}

describe('settledCheck', () => {
  it('holds when the live heap and settled RSS stay while the burst peaks grow (V8 sizing its heap)', () => {
    // br2 of the failing run: peaks 140.7 / 158.5 / 175.0 MiB, live heap ~19.7 MiB throughout.
    const check = settledCheck(
      [NAME],
      [settled(19.6, 138), settled(19.7, 139), settled(19.8, 140)],
      [peak(140.7), peak(158.5), peak(175)],
    );
    assert.equal(check.ok, true, check.detail);
    assert.match(check.detail, /heapUsed 19\.6\/19\.7\/19\.8/);
  });

  it('fails on live heap kept from round to round (objects per request)', () => {
    const check = settledCheck(
      [NAME],
      [settled(19.6, 138), settled(21, 139), settled(22.5, 140)],
      [peak(140), peak(140), peak(140)],
    );
    assert.equal(check.ok, false);
    assert.match(check.detail, /grew: bridge br1 \(live heap\)/);
  });

  it('fails on resident memory that stays past round 1 peak (native memory kept)', () => {
    const check = settledCheck(
      [NAME],
      [settled(19.6, 138), settled(19.6, 160), settled(19.6, 190)],
      [peak(140), peak(165), peak(195)],
    );
    assert.equal(check.ok, false);
    assert.match(check.detail, /grew: bridge br1 \(settled RSS\)/);
  });

  it('fails for an actor it could not measure', () => {
    const check = settledCheck([NAME, 'router rt1'], [settled(19.6, 138), settled(19.6, 138)], [peak(140)]);
    assert.equal(check.ok, false);
    assert.match(check.detail, /router rt1 \(not measured\)/);
  });
});

describe('memory probe', () => {
  it('reports memory before and after a full GC and writes a heap snapshot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-probe-'));
    try {
      // A process that dropped 20 MiB of garbage: a full GC must take its live heap down.
      const script = join(dir, 'idle.mjs');
      writeFileSync(
        script,
        'let junk = Array.from({ length: 200_000 }, (_, i) => ({ i, s: "x".repeat(50) }));\n' +
          'junk = undefined;\nprocess.send("dropped");\nsetInterval(() => {}, 1000);\n',
      );
      const child = fork(script, [], { execArgv: ['--import', MEMORY_PROBE] });
      try {
        const snapshot = join(dir, 'a.heapsnapshot');
        const report = await new Promise<MemoryReport>((resolve) => {
          child.on('message', (m) => {
            if (m === 'dropped') child.send({ type: 'chaos-memory', id: 1, gc: true, snapshot });
            else resolve(m as MemoryReport);
          });
        });
        assert.equal(report.error, undefined);
        assert.ok(report.after.heapUsed < report.before.heapUsed - 5 * MiB, JSON.stringify(report));
        assert.ok(report.after.rss > 0 && report.spaces.old_space !== undefined);
        assert.equal(report.snapshot, snapshot);
        assert.ok(existsSync(snapshot));
      } finally {
        child.kill('SIGKILL');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
