/**
 * The short chaos profile inside `npm test`: `tsx chaos/run.ts --profile short` (the scenarios
 * marked short, small load, 2 replicas) passes, and writes summary.md and each scenario's
 * .json, .md and .svg. No timing assertions: only that the invariants held and the report exists.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { SCENARIOS } from '../../chaos/scenarios/index.ts';
import { runChaos } from '../helpers/chaos-run.ts';

/** Every short scenario's topology, load and fault, one after another, on a busy 2-core machine. */
const RUN_TIMEOUT_MS = 600_000;

describe('chaos runner: short profile', () => {
  it(
    'passes, with summary.md and each scenario’s .json, .md and .svg',
    { timeout: RUN_TIMEOUT_MS },
    async () => {
      const run = await runChaos(['--profile', 'short']);
      try {
        assert.equal(run.status, 0, `the short profile failed:\n${run.output}`);
        const summary = readFileSync(join(run.dir, 'summary.md'), 'utf8');
        for (const s of SCENARIOS.filter((x) => x.short === true)) {
          assert.match(summary, new RegExp(`\\| ${s.name} \\| (passed|skipped: .+) \\|`));
          const skipped = new RegExp(`\\| ${s.name} \\| skipped`).test(summary);
          for (const ext of skipped ? ['md'] : ['json', 'md', 'svg'])
            assert.ok(
              existsSync(join(run.dir, `${s.name}.${ext}`)),
              `${s.name}.${ext} missing in ${run.dir}`,
            );
        }
      } finally {
        rmSync(dirname(run.dir), { recursive: true, force: true });
      }
    },
  );
});
