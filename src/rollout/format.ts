/**
 * A rollout as a person reads it (`switchyard rollout status`): where it is, why, the evidence
 * of its last look check by check, and its decisions.
 */
import type { RolloutDecision, RolloutRecord } from './types.ts';

/** How old a `starting` record may get before status says no collector took it. */
export const UNCLAIMED_AFTER_MS = 10_000;

function time(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function stepText(r: RolloutRecord): string {
  return `step ${r.step + 1}/${r.steps.length} (${r.steps.join(',')}), canary weight ${r.weight}%`;
}

function decisionLine(d: RolloutDecision): string {
  const look = d.look > 0 ? ` look ${d.look}` : '';
  return `${time(d.at)}  ${d.action.padEnd(8)} ${d.verdict.padEnd(12)} step ${d.step + 1} at ${d.weight}%${look}, by ${d.by}: ${d.reason}`;
}

/** Lines describing one rollout; `now` decides whether a start still waits for a collector. */
export function formatRollout(r: RolloutRecord, now = Date.now(), decisions = 8): string[] {
  const lines = [
    `${r.model}: rollout ${r.id} is ${r.state}, ${stepText(r)}`,
    `  stable ${r.stable} → canary ${r.canary} (alias ${r.alias}); canary replicas: ${r.canary_replicas.join(', ') || 'none yet'}`,
    `  started ${time(r.started_at)} by ${r.by}; step started ${time(r.step_started_at)}; updated ${time(r.updated_at)}${r.driver !== undefined ? ` by collector ${r.driver}` : ''}`,
    `  why: ${r.reason}`,
  ];
  if (r.state === 'starting' && now - Date.parse(r.updated_at) > UNCLAIMED_AFTER_MS) {
    lines.push('  note: no collector has acted on it yet: is one running (switchyard up starts one)?');
  }
  const look = [...r.decisions].reverse().find((d) => d.checks.length > 0);
  if (look !== undefined) {
    lines.push(
      `  evidence of the last look (step ${look.step + 1}, look ${look.look} of at most ${r.policy.max_looks}, ` +
        `window ${time(look.window.from)} – ${time(look.window.to)}): ${look.verdict}`,
    );
    for (const c of look.checks) lines.push(`    ${c.check.padEnd(10)} ${c.verdict.padEnd(12)} ${c.reason}`);
  }
  const shown = r.decisions.slice(-decisions);
  if (shown.length > 0) {
    lines.push(`  decisions (last ${shown.length} of ${r.decisions.length} kept):`);
    for (const d of shown) lines.push(`    ${decisionLine(d)}`);
  }
  return lines;
}
