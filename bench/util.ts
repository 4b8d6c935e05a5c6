/** Small helpers the benchmark scripts share: prompts, percentiles, a table. */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelTokenizer } from '../src/engine/tokenizer.ts';
import { ROOT } from '../test/helpers/models.ts';

/** Shortest and longest benchmark prompt, in tokens. */
export const PROMPT_TOKENS_MIN = 8;
export const PROMPT_TOKENS_MAX = 64;

/**
 * `count` prompts of 8–64 tokens cut from the project's own corpus, the same every run, so that
 * every contender in a benchmark gets identical inputs.
 */
export function benchPrompts(tokenizer: ModelTokenizer, count: number): number[][] {
  const dir = join(ROOT, 'models', 'corpus');
  const text = readdirSync(dir)
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
  const ids = tokenizer.encode(text);
  const span = PROMPT_TOKENS_MAX - PROMPT_TOKENS_MIN + 1;
  return Array.from({ length: count }, (_, i) => {
    const len = PROMPT_TOKENS_MIN + ((i * 37) % span);
    const at = (i * 997) % (ids.length - len);
    return ids.slice(at, at + len);
  });
}

/** The p-th percentile (0–100) of a sample, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** The median of a sample. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** A plain-text table of (name, value, unit) rows. */
export function table(rows: ReadonlyArray<readonly [string, number, string]>): string {
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows
    .map(([name, value, unit]) => `${name.padEnd(width)}  ${String(value).padStart(10)} ${unit}`)
    .join('\n');
}
