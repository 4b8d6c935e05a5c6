/** Placeholder until the datasets module lands (same API). */
import type { CollectedRecord } from './record.ts';

/** Placeholder. */
export interface DatasetFilters {
  model?: string;
  version?: string;
  since?: number | Date;
  until?: number | Date;
  minRating?: number;
  finishReason?: 'stop' | 'length';
  hasFeedback?: boolean;
}

/** Placeholder. */
export function exportDataset(
  records: Iterable<CollectedRecord>,
  _format: string,
  _filters: DatasetFilters,
): { lines: string[]; counts: Record<string, number>; seqRange: { first: number; last: number } | null } {
  const lines = [...records].map((r) => JSON.stringify({ id: r.request_id }));
  return { lines, counts: { exported: lines.length }, seqRange: null };
}
