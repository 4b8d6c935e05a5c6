/**
 * `tsx chaos/rerender.ts <report dir>`: rebuilds every `<scenario>.md`, `<scenario>.svg` and
 * summary.md of a run from its History JSON files alone (after a change to the report, or to
 * check that the report really is derived from the histories). A run's failures (a scenario that
 * did not run to its end) are not in the JSON and are not shown.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkHistory, type CheckResult } from './history/checker.ts';
import type { History } from './history/types.ts';
import { summary, writeScenarioReport, type ScenarioResult } from './report.ts';
import { SCENARIOS } from './scenarios/index.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: tsx chaos/rerender.ts <report dir>');
const results: ScenarioResult[] = [];
const checks = new Map<string, CheckResult>();
for (const file of readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()) {
  const history = JSON.parse(readFileSync(join(dir, file), 'utf8')) as History;
  const scenario = SCENARIOS.find((s) => s.name === history.scenario);
  const check = checkHistory(history, {
    allowedErrors: scenario?.allowedErrors ?? [],
    captureMayMiss: scenario?.disturbsCapture === true,
  });
  const result: ScenarioResult = { history, ...(scenario ? { invariant: scenario.invariant } : {}) };
  writeScenarioReport(dir, result, check);
  results.push(result);
  checks.set(history.scenario, check);
}
if (results.length === 0) throw new Error(`${dir} holds no History JSON`);
writeFileSync(join(dir, 'summary.md'), summary(results[0]!.history.seed, results, checks));
console.log(`[chaos] re-rendered ${results.length} scenario(s) in ${dir}`);
