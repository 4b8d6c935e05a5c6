/** Placeholder until the stats module lands (same API). */
import type { CollectedRecord } from './record.ts';

/** Per-version figures (placeholder). */
export interface VersionStats {
  model: string;
  version: string;
  requests: number;
}

/** Placeholder. */
export function versionStats(records: Iterable<CollectedRecord>): VersionStats[] {
  const by = new Map<string, VersionStats>();
  for (const r of records) {
    if (!r.completion) continue;
    const k = `${r.completion.model}@${r.completion.model_version ?? 'unknown'}`;
    const s = by.get(k) ?? {
      model: r.completion.model,
      version: r.completion.model_version ?? 'unknown',
      requests: 0,
    };
    s.requests++;
    by.set(k, s);
  }
  return [...by.values()];
}
