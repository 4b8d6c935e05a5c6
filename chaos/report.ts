/** The run's report folder: one History JSON per scenario and a summary.md of all of them. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { History } from './history/types.ts';

/** One scenario's result as the summary shows it. */
export interface ScenarioResult {
  history: History;
  /** Why the scenario could not run, when it could not. */
  failure?: string;
  /** Why it was skipped (missing privileges): listed, and not a failure. */
  skipped?: string;
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

function countBy<T>(items: readonly T[], key: (item: T) => string): string {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k}: ${n}`).join(', ') || 'none';
}

/** summary.md: per scenario, requests, outcomes by kind and code, faults and their verification. */
export function summary(seed: number, results: readonly ScenarioResult[]): string {
  const lines = [`# Chaos run (seed ${seed})`, ''];
  for (const { history: h, failure, skipped } of results) {
    lines.push(`## ${h.scenario}`, '');
    if (skipped !== undefined) {
      lines.push(`**Skipped:** ${skipped}`, '');
      continue;
    }
    if (failure !== undefined) lines.push(`**Did not run to the end:** ${failure}`, '');
    const ops = h.operations;
    const outcome = (o: (typeof ops)[number]): string =>
      o.outcome.kind === 'error' ? `error(${o.outcome.code})` : o.outcome.kind;
    const exact = ops.filter(
      (o) =>
        o.outcome.kind === 'ok' &&
        o.reference !== undefined &&
        o.chunks.flatMap((c) => c.tokenIds).join(',') === o.reference.tokenIds.join(','),
    ).length;
    lines.push(
      `- requests sent: ${ops.length} in ${((h.endedAt - h.startedAt) / 1000).toFixed(1)} s`,
      `- outcomes: ${countBy(ops, outcome)}`,
      `- ok and token-for-token equal to the reference (a rough view; the checker decides): ${exact}`,
    );
    if (h.faults.length === 0) lines.push('- faults: none');
    for (const f of h.faults) {
      const verified = f.verified === undefined ? '**NOT verified**' : `verified: ${f.verified}`;
      lines.push(`- fault: ${f.name} on ${f.target}, ${verified}`);
    }
    lines.push('');
  }
  return `${lines.join('\n')}`;
}
