/**
 * The capture check: the history checker's "other records" hook (match.ts) applied to what the
 * capture path kept of a run (`history.capture`). For every request the history saw finish, ok
 * or error, the completions stream must hold at most one final event, and the collector's record
 * must agree with the client: completed with the same finish reason and token count, or the same
 * error code. Exactly one record where the scenario leaves JetStream and the routers alone; where
 * it does not, a missing record passes only with its cause named (a router killed before the
 * request's event could leave it, or a drop the routers counted).
 */
import { scopedRequestId, tenantOf } from '../../src/bridge/tenancy.ts';
import { ANONYMOUS_CALLER } from '../../src/bridge/policy-defaults.ts';
import { matchRecords } from './match.ts';
import type { CapturedRecord, CaptureEvidence, History, Operation } from './types.ts';

/**
 * A request that ended up to this long after its router's SIGKILL may still have been that
 * router's: the client reads its end a moment after the router sent it, and the router publishes
 * the event after the end, so a kill in between loses it.
 */
export const KILLED_ROUTER_SLACK_MS = 2_000;

/** Why a finished request has no record. */
export type MissingCause =
  /** Its router was SIGKILLed (a fault of the scenario) before the event left it. */
  | 'router killed'
  /** A router counted a drop (`switchyard_capture_dropped_total`) it can stand for. */
  | 'counted drop'
  /** An allowed error answered before any router saw the request (a bridge's load shedding). */
  | 'refused before a router'
  /** The stream holds its final event but the records bucket has no record: never allowed. */
  | 'lost by the collector'
  /** Nothing explains it: never allowed. */
  | 'unexplained';

/** Causes that pass in a scenario that disturbs capture (kills routers, restarts NATS, partitions). */
const EXPLAINED: ReadonlySet<MissingCause> = new Set([
  'router killed',
  'counted drop',
  'refused before a router',
]);
/** Causes that pass in every scenario. */
const ALWAYS_EXPLAINED: ReadonlySet<MissingCause> = new Set(['refused before a router']);

/** What the capture check allows. */
export interface CaptureRules {
  /**
   * The scenario kills routers, restarts NATS or partitions it: a missing record passes when its
   * cause is named. Otherwise every finished request must be recorded exactly once. @default false
   */
  mayMiss?: boolean;
  /** The scenario's allowed error codes (an allowed refusal may never have reached a router). */
  allowedErrors?: Iterable<string>;
}

/** The capture check's word on one scenario. */
export interface CaptureResult {
  /** Operations the history saw finish (ok or error): each must have its record. */
  checked: number;
  /** Of those, recorded once with an outcome that matches the history. */
  recorded: number;
  /** Finished operations with no record, by cause. */
  missing: Partial<Record<MissingCause, string[]>>;
  /** Operations with more than one final completion event in the stream. */
  duplicates: string[];
  /** Operations whose record disagrees with the history, with how. */
  mismatches: Array<{ id: string; reason: string }>;
  /** Records of no finished operation (unanswered ones, or traffic of no load client). */
  extra: number;
  /** Why the check failed; empty when it held. */
  failures: string[];
  ok: boolean;
}

/** The cluster request id an operation's events carry: HTTP ones are scoped to the bridge's tenant. */
export function clusterRequestId(op: Pick<Operation, 'id' | 'via'>): string {
  return op.via === 'nats' ? op.id : scopedRequestId(tenantOf(ANONYMOUS_CALLER), op.id);
}

/** Why a record disagrees with the operation the client saw end, or undefined when it agrees. */
export function compareCaptured(op: Operation, record: CapturedRecord): string | undefined {
  const outcome = op.outcome;
  if (record.completion === 'none') return 'the record holds no completion event';
  if (outcome.kind === 'ok') {
    if (record.code !== undefined) return `record error ${record.code}, history completed`;
    if (record.completion !== 'final') return 'record provisional, history completed';
    if (record.finishReason !== 'stop' && record.finishReason !== 'length')
      return `record finish reason ${record.finishReason ?? 'none'}, history completed`;
    if (outcome.finishReason !== record.finishReason)
      return `record finish reason ${record.finishReason}, history ${outcome.finishReason}`;
    // HTTP answers without usage say -1: no count to compare.
    if (outcome.completionTokens >= 0 && record.completionTokens !== outcome.completionTokens)
      return `record ${record.completionTokens ?? 'no'} tokens, history ${outcome.completionTokens}`;
    return undefined;
  }
  if (outcome.kind === 'error') {
    if (record.code === undefined)
      return `record ${record.finishReason ?? 'no outcome'}, history error ${outcome.code}`;
    if (record.code !== outcome.code) return `record error ${record.code}, history error ${outcome.code}`;
    return undefined;
  }
  return undefined;
}

/** Joins `history.capture` to the history's finished operations; undefined without capture evidence. */
export function checkCapture(history: History, rules: CaptureRules = {}): CaptureResult | undefined {
  const evidence: CaptureEvidence | undefined = history.capture;
  if (evidence === undefined) return undefined;
  const allowed = new Set(rules.allowedErrors ?? []);
  // Histories arrive as JSON; an operation the writer never closed may lack an outcome.
  const finished = history.operations.filter((op) => {
    const kind = (op.outcome as Operation['outcome'] | undefined)?.kind;
    return kind === 'ok' || kind === 'error';
  });
  const opOf = new Map(finished.map((op) => [clusterRequestId(op), op]));
  const match = matchRecords(
    { ...history, operations: finished },
    evidence.records,
    (r) => opOf.get(r.requestId)?.id ?? r.requestId,
    compareCaptured,
  );
  const result: CaptureResult = {
    checked: finished.length,
    recorded: 0,
    missing: {},
    duplicates: [],
    mismatches: match.mismatched,
    extra: match.extra.length,
    failures: [],
    ok: true,
  };
  for (const op of finished)
    if ((evidence.finalEvents[clusterRequestId(op)] ?? 0) > 1) result.duplicates.push(op.id);
  const duplicated = new Set(result.duplicates);
  const mismatched = new Set(match.mismatched.map((m) => m.id));
  const missingIds = new Set(match.missing);
  result.recorded = finished.filter(
    (op) => !missingIds.has(op.id) && !duplicated.has(op.id) && !mismatched.has(op.id),
  ).length;

  const kills = history.faults
    .filter((f) => f.name === 'SIGKILL' && f.target.startsWith('router '))
    .map((f) => f.startedAt);
  let drops = Object.values(evidence.drops)
    .flatMap((byReason) => Object.values(byReason))
    .reduce((a, b) => a + b, 0);
  const byId = new Map(finished.map((op) => [op.id, op]));
  for (const id of match.missing) {
    const op = byId.get(id)!;
    const cause = missingCause(op, evidence, allowed, kills, drops);
    if (cause === 'counted drop') drops--;
    (result.missing[cause] ??= []).push(id);
  }

  const explained = rules.mayMiss === true ? EXPLAINED : ALWAYS_EXPLAINED;
  for (const [cause, ids] of Object.entries(result.missing) as Array<[MissingCause, string[]]>)
    if (!explained.has(cause))
      result.failures.push(`${ids.length} finished request(s) with no record (${cause})`);
  if (result.duplicates.length > 0)
    result.failures.push(`${result.duplicates.length} request(s) with more than one final event`);
  if (result.mismatches.length > 0)
    result.failures.push(`${result.mismatches.length} record(s) disagree with the history`);
  if (!evidence.caughtUp) result.failures.push(`the capture did not catch up: ${evidence.detail}`);
  result.ok = result.failures.length === 0;
  return result;
}

function missingCause(
  op: Operation,
  evidence: CaptureEvidence,
  allowed: ReadonlySet<string>,
  kills: readonly number[],
  drops: number,
): MissingCause {
  if ((evidence.finalEvents[clusterRequestId(op)] ?? 0) > 0) return 'lost by the collector';
  if (op.outcome.kind === 'error' && allowed.has(op.outcome.code)) return 'refused before a router';
  if (kills.some((at) => op.outcome.at <= at + KILLED_ROUTER_SLACK_MS)) return 'router killed';
  if (drops > 0) return 'counted drop';
  return 'unexplained';
}

/** The capture check as report lines: counts, then the first ids of each problem. */
export function captureLines(result: CaptureResult, evidence: CaptureEvidence, listed: number): string[] {
  const missing = Object.entries(result.missing)
    .map(([cause, ids]) => `${cause} ×${ids.length}`)
    .join(', ');
  const drops = Object.entries(evidence.drops)
    .flatMap(([router, byReason]) =>
      Object.entries(byReason)
        .filter(([, n]) => n > 0)
        .map(([reason, n]) => `${router} ${reason} ×${n}`),
    )
    .join(', ');
  const lines = [
    `### capture: ${result.ok ? 'held' : 'FAILED'}`,
    '',
    '| | |',
    '|---|---|',
    `| records checked | ${result.checked} |`,
    `| recorded once, matching | ${result.recorded} |`,
    `| missing by cause | ${missing === '' ? '—' : missing} |`,
    `| duplicates | ${result.duplicates.length} |`,
    `| mismatches | ${result.mismatches.length} |`,
    `| records of no finished request | ${result.extra} |`,
    `| provisional events | ${evidence.provisionalEvents} |`,
    `| drops counted by routers | ${drops === '' ? '—' : drops} |`,
    `| catch-up | ${evidence.detail} |`,
    '',
  ];
  if (evidence.planted !== undefined)
    lines.push(
      `**Self-test:** planted capture fault \`${evidence.planted.kind}\` on \`${evidence.planted.operation}\`; the capture check must find ${evidence.planted.expected}.`,
      '',
    );
  for (const f of result.failures) lines.push(`- capture **FAILED**: ${f}`);
  for (const id of result.duplicates.slice(0, listed)) lines.push(`- capture duplicate: \`${id}\``);
  for (const m of result.mismatches.slice(0, listed))
    lines.push(`- capture mismatch: \`${m.id}\`: ${m.reason}`);
  for (const [cause, ids] of Object.entries(result.missing))
    for (const id of ids.slice(0, listed)) lines.push(`- capture missing (${cause}): \`${id}\``);
  return [...lines, ''];
}
