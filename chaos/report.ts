/**
 * The run's report folder: per scenario `<scenario>.json` (the History), `<scenario>.md` (the
 * checker's table, detection and recovery times, latency and throughput before, during and
 * after the fault) and `<scenario>.svg`; and a summary.md of all of them, skipped ones listed
 * with why. Everything but the run's failures is derived from the History JSON alone.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckResult } from './history/checker.ts';
import { summarize } from './history/summary.ts';
import type { History } from './history/types.ts';
import { renderSvg } from './report-svg.ts';
import {
  faultTimings,
  faultWindows,
  MIN_RATE_WINDOW_MS,
  spread,
  windowStats,
  type Spread,
} from './timings.ts';

/** One scenario's result as the summary shows it. */
export interface ScenarioResult {
  history: History;
  /** Why the scenario could not run, when it could not. */
  failure?: string;
  /** Why it was skipped (missing privileges): listed, and not a failure. */
  skipped?: string;
  /** The scenario's invariant, in its own words. */
  invariant?: string;
}

/** Creates `chaos/reports/<timestamp>/` and returns its path. */
export function reportDir(root: string, startedAt: Date): string {
  const dir = join(root, startedAt.toISOString().replace(/[:.]/g, '-'));
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function writeHistory(dir: string, history: History): void {
  writeFileSync(join(dir, `${history.scenario}.json`), `${JSON.stringify(history, null, 2)}\n`);
}

const ms = (v: number | undefined): string => (v === undefined ? '—' : `${Math.round(v)} ms`);
const spreadText = (s: Spread): string => (s.count === 0 ? '—' : `${ms(s.p50)} / ${ms(s.max)}`);
const seconds = (from: number, to: number): string => `${((to - from) / 1000).toFixed(1)} s`;

/**
 * Per fault: its verification, and over the requests the router failed over off the faulted
 * actor, p50/max of detection (fault start → the router's failover) and recovery (fault start →
 * the client's first token after that failover).
 */
export function timingSection(history: History): string[] {
  const timings = faultTimings(history);
  if (timings.length === 0) return ['No fault was injected.'];
  const lines = [
    '| fault | target | verified | lasted | requests failed over | detection p50 / max | recovery p50 / max | not resumed |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const t of timings) {
    const f = t.fault;
    const recovered = t.requests.flatMap((r) => (r.recoveryMs === undefined ? [] : [r.recoveryMs]));
    lines.push(
      `| ${f.name} | ${f.target} | ${f.verified ?? '**NOT verified**'} | ${f.endedAt === undefined ? '—' : seconds(f.startedAt, f.endedAt)} | ${t.requests.length} | ${spreadText(spread(t.requests.map((r) => r.detectionMs)))} | ${spreadText(spread(recovered))} | ${t.requests.length - recovered.length} |`,
    );
  }
  lines.push(
    '',
    'Detection: the router\'s own warn-level log line "attempt failed; resuming elsewhere" naming the',
    "faulted replica (`history.events`). A fault whose actor no router fails requests over from (a router's",
    'own death: its clients notice) shows no request here.',
  );
  return lines;
}

/** Latency p50/p99 and throughput before, during and after the faults. */
export function windowSection(history: History): string[] {
  const stats = windowStats(history, faultWindows(history));
  return [
    '| window | span | completed | latency p50 | latency p99 | tokens/s | requests/s |',
    '|---|---|---|---|---|---|---|',
    ...stats.map(
      (s) =>
        `| ${s.window.name} | ${seconds(s.window.from, s.window.to)} | ${s.completed} | ${ms(s.latencyP50Ms)} | ${ms(s.latencyP99Ms)} | ${s.tokensPerS?.toFixed(1) ?? '—'} | ${s.requestsPerS?.toFixed(2) ?? '—'} |`,
    ),
    '',
    "During: from the first fault's start to the later of its end and the last affected request's",
    'resumption. A request counts in the window it ended in, a token in the window it arrived in;',
    `no rates for a window under ${MIN_RATE_WINDOW_MS} ms. No "after" when the load ended first.`,
  ];
}

/** `<scenario>.md`: the invariant, the checker's table, timings and windows. */
export function scenarioMarkdown(result: ScenarioResult, check: CheckResult | undefined): string {
  const h = result.history;
  const lines = [`## ${h.scenario}`, ''];
  if (result.invariant !== undefined) lines.push(`Invariant: ${result.invariant}`, '');
  if (result.skipped !== undefined) return [...lines, `**Skipped:** ${result.skipped}`, ''].join('\n');
  lines.push(`Took ${seconds(h.startedAt, h.endedAt)} (topology start, load, fault, stop).`, '');
  if (result.failure !== undefined) lines.push(`**Did not run to the end:** ${result.failure}`, '');
  if (h.planted !== undefined) {
    lines.push(
      `**Self-test:** planted \`${h.planted.kind}\` in \`${h.planted.operation}\`; the checker must call it ${h.planted.expectedVerdict}.`,
      '',
    );
  }
  if (check !== undefined) lines.push(summarize(check, h.capture));
  lines.push('### Faults: detection and recovery', '', ...timingSection(h), '');
  lines.push('### Latency and throughput', '', ...windowSection(h), '');
  lines.push(`![latency and throughput](${h.scenario}.svg)`, '');
  return lines.join('\n');
}

/** Writes `<scenario>.md` and `<scenario>.svg` next to the scenario's JSON. */
export function writeScenarioReport(
  dir: string,
  result: ScenarioResult,
  check: CheckResult | undefined,
): void {
  writeFileSync(join(dir, `${result.history.scenario}.md`), scenarioMarkdown(result, check));
  if (result.skipped === undefined)
    writeFileSync(join(dir, `${result.history.scenario}.svg`), renderSvg(result.history));
}

/** summary.md: one line per scenario (passed, FAILED or skipped, and why), then each scenario's report. */
export function summary(
  seed: number,
  results: readonly ScenarioResult[],
  checks: ReadonlyMap<string, CheckResult>,
): string {
  const lines = [
    `# Chaos run (seed ${seed})`,
    '',
    '| scenario | result | requests | exact | took |',
    '|---|---|---|---|---|',
  ];
  for (const r of results) {
    const h = r.history;
    const check = checks.get(h.scenario);
    const result =
      r.skipped !== undefined
        ? `skipped: ${r.skipped}`
        : r.failure !== undefined
          ? `FAILED: did not run to the end`
          : check?.ok === true
            ? 'passed'
            : 'FAILED';
    const took = r.skipped === undefined ? seconds(h.startedAt, h.endedAt) : '—';
    lines.push(
      `| ${h.scenario} | ${result} | ${h.operations.length} | ${check?.counts.exact ?? '—'} | ${took} |`,
    );
  }
  lines.push('');
  for (const r of results) lines.push(scenarioMarkdown(r, checks.get(r.history.scenario)));
  return lines.join('\n');
}
