/**
 * The trainer interface (docs/training.md): how `switchyard train` calls a trainer command and
 * reads what it says. A trainer is run as
 *
 *     <command> --dataset <abs manifest.json> --base <abs model folder> --out <abs folder> [--version V]
 *
 * and exits 0 once a model folder is complete at `--out`, non-zero on failure. On stdout it may
 * write, one per line, `progress {json}` (at least `step` and `steps`; `loss`, `epoch` and more
 * optional) and, last, `result {json}` (its metrics). Any other line is a log line, relayed as it
 * is. stderr is free text; its last lines are quoted when the trainer fails.
 */

/** The prefix of a progress line. */
export const PROGRESS_PREFIX = 'progress ';
/** The prefix of the result line. */
export const RESULT_PREFIX = 'result ';

/** What a progress line carries. */
export interface TrainerProgress {
  step: number;
  steps: number;
  loss?: number;
  epoch?: number;
  [key: string]: unknown;
}

/** One stdout line of a trainer, classified. */
export type TrainerLine =
  | { kind: 'progress'; progress: TrainerProgress }
  | { kind: 'result'; result: Record<string, unknown> }
  | { kind: 'log'; text: string };

/** Formats a progress line (no line break). */
export function progressLine(p: TrainerProgress): string {
  return `${PROGRESS_PREFIX}${JSON.stringify(p)}`;
}

/** Formats the result line (no line break). */
export function resultLine(result: Record<string, unknown>): string {
  return `${RESULT_PREFIX}${JSON.stringify(result)}`;
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Classifies one stdout line; a malformed progress or result line is a log line. */
export function parseTrainerLine(line: string): TrainerLine {
  if (line.startsWith(PROGRESS_PREFIX)) {
    const p = jsonObject(line.slice(PROGRESS_PREFIX.length));
    if (p !== undefined && Number.isFinite(p.step) && Number.isFinite(p.steps))
      return { kind: 'progress', progress: p as TrainerProgress };
  } else if (line.startsWith(RESULT_PREFIX)) {
    const r = jsonObject(line.slice(RESULT_PREFIX.length));
    if (r !== undefined) return { kind: 'result', result: r };
  }
  return { kind: 'log', text: line };
}
