/**
 * What bench:rollout checks of the requests it made: which failed (an error, or a stream cut short
 * of max_tokens), how many ended on each version, whether each ended on the version its ack
 * pinned, and whether every repeat of one request on one version gave the same tokens (the load
 * cycles through a few distinct requests, so their outputs also show that the versions differ).
 */

/** One finished request of the load. */
export interface Done {
  /** Which of the distinct requests it was. */
  key: number;
  startedAt: number;
  endedAt: number;
  /** The version the stream was pinned to once its ack was read. */
  pinnedAtAck?: string;
  /** The version the result reports (the end's). */
  endVersion?: string;
  tokens: number[];
  /** `code: message` of the error it ended with. */
  error?: string;
}

/** The checks' counts. */
export interface RequestChecks {
  failed: Done[];
  /** Failures by error code (or `short (n tokens)`). */
  failures: Record<string, number>;
  /** Completed requests by the version they ended on. */
  perVersion: Record<string, number>;
  /** Completed requests whose end names another version than their ack did. */
  pinMismatches: number;
  /** Completed requests whose tokens differ from the most common run of the same request on the same version. */
  tokenMismatches: number;
  /** Distinct requests whose most common tokens differ between versions 1 and 2, of those seen on both. */
  versionsDiffer: number;
  versionsCompared: number;
}

/** Checks `done` (requests of `maxTokens` tokens with ignoreEos). */
export function checkRequests(done: readonly Done[], maxTokens: number): RequestChecks {
  const failed = done.filter((d) => d.error !== undefined || d.tokens.length !== maxTokens);
  const failures: Record<string, number> = {};
  for (const d of failed) {
    const why = d.error?.split(':')[0] ?? `short (${d.tokens.length} tokens)`;
    failures[why] = (failures[why] ?? 0) + 1;
  }
  const completed = done.filter((d) => d.error === undefined);
  const perVersion: Record<string, number> = {};
  for (const d of completed) perVersion[d.endVersion ?? '?'] = (perVersion[d.endVersion ?? '?'] ?? 0) + 1;
  const pinMismatches = completed.filter(
    (d) => d.pinnedAtAck === undefined || d.pinnedAtAck !== d.endVersion,
  ).length;
  // Token sequences of each (request, version) with their counts.
  const byRun = new Map<string, Map<string, number>>();
  for (const d of completed) {
    const run = `${d.key}@${d.endVersion}`;
    const seqs = byRun.get(run) ?? new Map<string, number>();
    const seq = d.tokens.join(',');
    seqs.set(seq, (seqs.get(seq) ?? 0) + 1);
    byRun.set(run, seqs);
  }
  let tokenMismatches = 0;
  for (const seqs of byRun.values()) {
    const counts = [...seqs.values()];
    tokenMismatches += counts.reduce((a, b) => a + b, 0) - Math.max(...counts);
  }
  const top = (key: number, version: string): string | undefined => {
    const seqs = byRun.get(`${key}@${version}`);
    return seqs === undefined ? undefined : [...seqs].sort((a, b) => b[1] - a[1])[0]![0];
  };
  let versionsDiffer = 0;
  let versionsCompared = 0;
  for (const key of new Set(completed.map((d) => d.key))) {
    const [a, b] = [top(key, '1'), top(key, '2')];
    if (a === undefined || b === undefined) continue;
    versionsCompared++;
    if (a !== b) versionsDiffer++;
  }
  return { failed, failures, perVersion, pinMismatches, tokenMismatches, versionsDiffer, versionsCompared };
}
