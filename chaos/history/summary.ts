/** One scenario's checker result as a small markdown table, for `<scenario>.md` and `summary.md`. */
import { captureLines } from './capture.ts';
import { PASSING_VERDICTS, type CheckResult } from './checker.ts';
import type { CaptureEvidence } from './types.ts';

/** How many failing operations the summary lists by id. */
export const SUMMARY_MAX_LISTED = 10;

/** The scenario's table (requests sent, exact, different, errors by code, lost, duplicated, gap, hung,
 * unchecked, unverified faults), then the first failing operations and unverified faults, then the
 * capture check where the run has capture evidence. */
export function summarize(result: CheckResult, evidence?: CaptureEvidence): string {
  const c = result.counts;
  const errors = Object.entries(result.errorsByCode)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, n]) => `${code} ×${n}`)
    .join(', ');
  const unverified = result.faults.filter((f) => !f.verified);
  const rows: Array<[string, string | number]> = [
    ['requests sent', result.operations.length],
    ['completed exact', c.exact],
    ['completed different', c.completed_different],
    ['errors allowed', c.error_allowed],
    ['errors not allowed', c.error_disallowed],
    ['errors by code', errors === '' ? '—' : errors],
    ['lost', c.lost],
    ['duplicated', c.duplicated],
    ['gap', c.gap],
    ['hung', c.hung],
    ['unchecked (hot sampling)', c.unchecked],
    ['faults unverified', `${unverified.length} of ${result.faults.length}`],
    ['invariant checks failed', `${result.checks.filter((c) => !c.ok).length} of ${result.checks.length}`],
  ];
  const lines = [
    `### ${result.scenario} (seed ${result.seed}): ${result.ok ? 'passed' : 'FAILED'}`,
    '',
    '| | |',
    '|---|---|',
    ...rows.map(([name, value]) => `| ${name} | ${value} |`),
  ];
  const failing = result.operations.filter((op) => !PASSING_VERDICTS.has(op.verdict));
  if (failing.length > 0 || unverified.length > 0 || result.checks.length > 0) lines.push('');
  for (const op of failing.slice(0, SUMMARY_MAX_LISTED))
    lines.push(`- \`${op.id}\` ${op.verdict}: ${op.reason}`);
  if (failing.length > SUMMARY_MAX_LISTED) lines.push(`- … and ${failing.length - SUMMARY_MAX_LISTED} more`);
  for (const check of result.checks)
    lines.push(`- check ${check.ok ? 'held' : '**FAILED**'}: ${check.name}: ${check.detail}`);
  for (const { fault } of unverified) {
    lines.push(`- fault \`${fault.name}\` on \`${fault.target}\` at ${fault.startedAt}: not verified`);
  }
  if (result.capture !== undefined && evidence !== undefined)
    lines.push('', ...captureLines(result.capture, evidence, SUMMARY_MAX_LISTED));
  return lines.join('\n') + '\n';
}
