/**
 * The runner's self-test end to end: a real short kill-replica run with one planted fault
 * (`--plant`: a duplicated chunk, a dropped end, a changed token) must fail, and its summary.md
 * must name the planted operation with the verdict it must get. One small run per kind. The
 * capture kinds (a second final event of one request, a record deleted from the bucket) must fail
 * the capture check, naming the request.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import { CAPTURE_PLANTS, PLANTS, type CapturePlantKind, type PlantKind } from '../../chaos/plant.ts';
import { runChaos } from '../helpers/chaos-run.ts';

/** Topology start, references and a few seconds of load, on a busy 2-core machine. */
const RUN_TIMEOUT_MS = 240_000;

/** A short kill-replica run with one planted fault of `kind`. */
function plantedRun(kind: string): ReturnType<typeof runChaos> {
  return runChaos([
    '--profile',
    'short',
    '--duration',
    '5',
    '--load',
    '100',
    '--plant',
    kind,
    'kill-replica',
  ]);
}

describe('chaos runner: planted faults', () => {
  for (const kind of Object.keys(PLANTS) as PlantKind[]) {
    it(`catches a planted ${kind} (${PLANTS[kind]})`, { timeout: RUN_TIMEOUT_MS }, async () => {
      const run = await plantedRun(kind);
      try {
        assert.equal(run.status, 1, `a planted ${kind} must fail the run:\n${run.output}`);
        const summary = readFileSync(`${run.dir}/summary.md`, 'utf8');
        const planted = /planted `([\w-]+)` in `([\w-]+)`/.exec(summary);
        assert.ok(planted, `summary.md does not say what was planted:\n${summary}`);
        assert.equal(planted[1], kind);
        assert.match(summary, new RegExp(`- \`${planted[2]}\` ${PLANTS[kind]}: `));
        assert.match(summary, /\| kill-replica \| FAILED \|/);
      } finally {
        rmSync(dirname(run.dir), { recursive: true, force: true });
      }
    });
  }

  /** What the capture section lists for each capture plant's request. */
  const CAPTURE_LINES: Record<CapturePlantKind, string> = {
    'duplicate-event': 'capture duplicate',
    'drop-event': 'capture missing \\(lost by the collector\\)',
  };
  for (const kind of Object.keys(CAPTURE_PLANTS) as CapturePlantKind[]) {
    it(`catches a planted ${kind} (${CAPTURE_PLANTS[kind]})`, { timeout: RUN_TIMEOUT_MS }, async () => {
      const run = await plantedRun(kind);
      try {
        assert.equal(run.status, 1, `a planted ${kind} must fail the run:\n${run.output}`);
        const summary = readFileSync(`${run.dir}/summary.md`, 'utf8');
        const planted = /planted capture fault `([\w-]+)` on `([\w-]+)`/.exec(summary);
        assert.ok(planted, `summary.md does not say what was planted:\n${summary}`);
        assert.equal(planted[1], kind);
        assert.match(summary, new RegExp(`- ${CAPTURE_LINES[kind]}: \`${planted[2]}\``));
        assert.match(summary, /### capture: FAILED/);
        assert.match(summary, /\| kill-replica \| FAILED \|/);
      } finally {
        rmSync(dirname(run.dir), { recursive: true, force: true });
      }
    });
  }
});
