/**
 * Checking another record of the same run against the history (the collector's capture, later):
 * join its records to operations by request id and report what is missing, extra or different.
 * The history is the client's truth; the other record must agree with it.
 */
import type { History, Operation } from './types.ts';

/** What joining a record to the history found. */
export interface MatchResult {
  /** Operations that found their record and agreed with it. */
  matched: number;
  /** Operation ids with no record. */
  missing: string[];
  /** Record keys with no operation. */
  extra: string[];
  /** Keys with more than one record (only the first is compared). */
  repeated: string[];
  /** Operations whose record disagrees, with how. */
  mismatched: Array<{ id: string; reason: string }>;
}

/**
 * Joins `records` to `history.operations` by `key(record) === operation.id` and compares each pair
 * with `compare`, which returns why they disagree or undefined when they agree
 * (`compareFinalOutcome` for the collector's request id → final outcome).
 */
export function matchRecords<R>(
  history: History,
  records: readonly R[],
  key: (record: R) => string,
  compare: (op: Operation, record: R) => string | undefined,
): MatchResult {
  const byKey = new Map<string, R>();
  const repeated = new Set<string>();
  for (const record of records) {
    const k = key(record);
    if (byKey.has(k)) repeated.add(k);
    else byKey.set(k, record);
  }
  const result: MatchResult = { matched: 0, missing: [], extra: [], repeated: [...repeated], mismatched: [] };
  const ids = new Set<string>();
  for (const op of history.operations) {
    ids.add(op.id);
    const record = byKey.get(op.id);
    if (record === undefined) {
      result.missing.push(op.id);
      continue;
    }
    const reason = compare(op, record);
    if (reason === undefined) result.matched++;
    else result.mismatched.push({ id: op.id, reason });
  }
  result.extra = [...byKey.keys()].filter((k) => !ids.has(k));
  return result;
}

/** A request's final outcome as another actor saw it (the collector's capture). */
export interface FinalOutcomeRecord {
  requestId: string;
  outcome: 'ok' | 'error' | 'unknown';
  /** For errors. */
  code?: string;
  /** For ok outcomes, when the record counts tokens. */
  completionTokens?: number;
}

/** The default comparison: same outcome kind, same error code, same token count where both say. */
export function compareFinalOutcome(op: Operation, record: FinalOutcomeRecord): string | undefined {
  const outcome = op.outcome;
  if (outcome.kind !== record.outcome) return `outcome ${record.outcome}, history ${outcome.kind}`;
  if (outcome.kind === 'error' && record.code !== undefined && record.code !== outcome.code) {
    return `error ${record.code}, history ${outcome.code}`;
  }
  if (
    outcome.kind === 'ok' &&
    record.completionTokens !== undefined &&
    record.completionTokens !== outcome.completionTokens
  ) {
    return `${record.completionTokens} tokens, history ${outcome.completionTokens}`;
  }
  return undefined;
}
