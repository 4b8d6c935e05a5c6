/**
 * The history checker: classifies every operation of a chaos run, as Jepsen's checkers do, from
 * the history alone (pure functions, no I/O). One verdict per operation, the worst finding wins;
 * the reason keeps every finding, so a gap that also changed the text says both.
 */
import { checkCapture, type CaptureResult } from './capture.ts';
import type {
  ChunkRecord,
  FaultRecord,
  History,
  InvariantCheck,
  Operation,
  OperationRequest,
  Reference,
  Verdict,
} from './types.ts';

/** Seeded requests up to this temperature must match their reference (README, "Exactness, measured"). */
export const EXACT_SEEDED_MAX_TEMPERATURE = 0.7;

/** Ending past the deadline by up to this much is not hung. */
export const DEFAULT_DEADLINE_SLACK_MS = 0;

/** What a scenario allows. */
export interface CheckRules {
  /** Error codes the scenario allows (e.g. `busy` under overload). @default none */
  allowedErrors?: Iterable<string>;
  /** How long past its deadline an operation may end before it counts as hung. @default 0 */
  deadlineSlackMs?: number;
  /**
   * The scenario kills routers, restarts NATS or partitions it: a request with no capture record
   * passes when its cause is named (history/capture.ts). @default false
   */
  captureMayMiss?: boolean;
}

/** One thing the checker found about an operation. */
export interface Finding {
  verdict: Verdict;
  reason: string;
}

/** The checker's word on one operation. */
export interface OperationCheck {
  id: string;
  verdict: Verdict;
  /** Every finding's reason, worst first. */
  reason: string;
  findings: Finding[];
}

/** A fault of the run, and whether the runner verified it happened. */
export interface FaultCheck {
  fault: FaultRecord;
  verified: boolean;
}

/** The checker's word on one scenario's history. */
export interface CheckResult {
  scenario: string;
  seed: number;
  operations: OperationCheck[];
  counts: Record<Verdict, number>;
  /** Error outcomes by code, allowed or not. */
  errorsByCode: Record<string, number>;
  faults: FaultCheck[];
  /** The runner's own invariant checks (history.checks). */
  checks: InvariantCheck[];
  /** The capture check, where the history holds capture evidence. */
  capture?: CaptureResult;
  /** Some operation was recorded, all passed, every fault was verified and every check held. */
  ok: boolean;
}

/** Worst first: the verdict of an operation is its first finding in this order. */
const VERDICT_ORDER: readonly Verdict[] = [
  'duplicated',
  'gap',
  'completed_different',
  'lost',
  'hung',
  'error_disallowed',
  'error_allowed',
  'unchecked',
  'exact',
];

/** The verdicts that meet the invariant. */
export const PASSING_VERDICTS: ReadonlySet<Verdict> = new Set<Verdict>([
  'exact',
  'unchecked',
  'error_allowed',
]);

/**
 * Whether the request's output is reproducible, so it must match its reference token for token:
 * greedy (temperature exactly 0; an absent temperature means 1, as in the OpenAI API) or seeded
 * at temperature ≤ 0.7.
 */
export function mustMatchReference(request: OperationRequest): boolean {
  if (request.temperature === 0) return true;
  return (
    request.seed !== undefined &&
    request.temperature !== undefined &&
    request.temperature <= EXACT_SEEDED_MAX_TEMPERATURE
  );
}

/** Classifies every operation of `history` and checks its faults. */
export function checkHistory(history: History, rules: CheckRules = {}): CheckResult {
  const allowed = new Set(rules.allowedErrors ?? []);
  const slackMs = rules.deadlineSlackMs ?? DEFAULT_DEADLINE_SLACK_MS;
  const operations = history.operations.map((op) => checkOperation(op, allowed, slackMs));
  const counts = Object.fromEntries(VERDICT_ORDER.map((v) => [v, 0])) as Record<Verdict, number>;
  for (const op of operations) counts[op.verdict]++;
  const errorsByCode: Record<string, number> = {};
  for (const op of history.operations) {
    // Histories arrive as JSON; an operation the writer never closed may lack an outcome.
    const outcome = op.outcome as Operation['outcome'] | undefined;
    if (outcome?.kind === 'error') errorsByCode[outcome.code] = (errorsByCode[outcome.code] ?? 0) + 1;
  }
  const faults = checkFaults(history);
  const checks = history.checks ?? [];
  const capture = checkCapture(history, { mayMiss: rules.captureMayMiss ?? false, allowedErrors: allowed });
  // A scenario that recorded no request proved nothing.
  const ok =
    operations.length > 0 &&
    operations.every((op) => PASSING_VERDICTS.has(op.verdict)) &&
    faults.every((f) => f.verified) &&
    checks.every((c) => c.ok) &&
    (capture?.ok ?? true);
  return {
    scenario: history.scenario,
    seed: history.seed,
    operations,
    counts,
    errorsByCode,
    faults,
    checks,
    ...(capture === undefined ? {} : { capture }),
    ok,
  };
}

/**
 * Every fault with whether the runner verified it (a non-empty `verified`). An unverified fault
 * fails the run even when every operation is exact: that is how a mistargeted fault is caught.
 */
export function checkFaults(history: History): FaultCheck[] {
  return history.faults.map((fault) => ({ fault, verified: (fault.verified ?? '').trim() !== '' }));
}

/** Classifies one operation. */
export function checkOperation(
  op: Operation,
  allowedErrors: ReadonlySet<string>,
  slackMs = 0,
): OperationCheck {
  if (op.via !== 'nats') return checkTextOperation(op, allowedErrors, slackMs);
  const findings: Finding[] = [...checkSeq(op.chunks)];
  const delivered = op.chunks.flatMap((c) => c.tokenIds);
  const outcome = op.outcome as Operation['outcome'] | undefined;
  const ended = outcome?.kind === 'ok' ? outcome.modelVersion : undefined;
  // One version from the pin to the end (failover resumes only on it).
  const pinned = checkVersions(op.chunks, ended, '');
  findings.push(...pinned.findings);
  const judged = referenceFor(op, pinned.version, outcome?.kind === 'ok', '');
  findings.push(...judged.findings);
  const reference = judged.reference;
  const exactness = reference !== undefined && mustMatchReference(op.request);
  if (exactness) {
    const finding = compareToReference(delivered, reference.tokenIds);
    if (finding) findings.push(finding);
  } else {
    findings.push(...resentAfterAttemptChange(op.chunks));
  }
  findings.push(...checkEnd(op, delivered, allowedErrors, slackMs));

  const failing = findings.some((f) => !PASSING_VERDICTS.has(f.verdict));
  if (outcome?.kind === 'ok' && !failing) {
    findings.push(
      exactness
        ? compareCompleted(op, delivered, reference, outcome.finishReason, pinned.version)
        : { verdict: 'unchecked', reason: uncheckedReason(op) },
    );
  }
  findings.sort((a, b) => VERDICT_ORDER.indexOf(a.verdict) - VERDICT_ORDER.indexOf(b.verdict));
  const first = findings[0] ?? { verdict: 'lost', reason: 'no outcome' };
  return { id: op.id, verdict: first.verdict, reason: findings.map((f) => f.reason).join('; '), findings };
}

/** The model version an operation ran on (its pin), and what contradicts it. */
interface VersionCheck {
  /** The version of its first chunk that names one, else the end's; undefined when none says. */
  version?: string;
  findings: Finding[];
}

/**
 * A request is pinned to one version at admission and keeps it to its end (resends and failover
 * resume only on it): every chunk that names a version names the first one's, and an end that
 * names one names it too. Chunks and ends that name none (older histories) are not judged.
 * `label` prefixes each reason (`attempt 2: ` for an HTTP attempt).
 */
export function checkVersions(
  chunks: readonly ChunkRecord[],
  ended: string | undefined,
  label: string,
): VersionCheck {
  const findings: Finding[] = [];
  const first = chunks.find((c) => c.modelVersion !== undefined);
  const pinned = first?.modelVersion;
  const moved = chunks.find((c) => c.modelVersion !== undefined && c.modelVersion !== pinned);
  if (first !== undefined && moved !== undefined) {
    findings.push({
      verdict: 'completed_different',
      reason: `${label}pinned to version ${pinned} (chunk seq ${first.seq}), chunk seq ${moved.seq} came from version ${moved.modelVersion}`,
    });
  }
  if (pinned !== undefined && ended !== undefined && ended !== pinned) {
    findings.push({
      verdict: 'completed_different',
      reason: `${label}pinned to version ${pinned}, completed on version ${ended}`,
    });
  }
  const version = pinned ?? ended;
  return { ...(version === undefined ? {} : { version }), findings };
}

/**
 * The reference `op` is judged against: with references by version (a run that may serve
 * several), the one of the version it ran on; an exact request that completed on a version with
 * no reference, or without naming a version at all, is a finding (it cannot be shown exact).
 * Without them (older histories), `op.reference`.
 */
export function referenceFor(
  op: Operation,
  version: string | undefined,
  completed: boolean,
  label: string,
): { reference?: Reference; findings: Finding[] } {
  const references = op.references;
  if (references === undefined) return { ...(op.reference ? { reference: op.reference } : {}), findings: [] };
  const known = Object.keys(references).sort().join(', ');
  if (version === undefined) {
    if (!completed || !mustMatchReference(op.request)) return { findings: [] };
    return {
      findings: [
        {
          verdict: 'completed_different',
          reason: `${label}completed without naming the model version it ran on (references for ${known})`,
        },
      ],
    };
  }
  const reference = references[version];
  if (reference !== undefined) return { reference, findings: [] };
  if (!mustMatchReference(op.request)) return { findings: [] };
  return {
    findings: [
      {
        verdict: 'completed_different',
        reason: `${label}ran on version ${version}, which has no reference (references for ${known})`,
      },
    ],
  };
}

/** Chunk seq must run 0, 1, 2, …: a skipped seq is a gap, a repeated or earlier seq a duplicate. */
function checkSeq(chunks: readonly ChunkRecord[]): Finding[] {
  const findings: Finding[] = [];
  let expected = 0;
  for (const chunk of chunks) {
    if (chunk.seq > expected) {
      findings.push({ verdict: 'gap', reason: `chunk seq ${expected}..${chunk.seq - 1} missing` });
    } else if (chunk.seq < expected) {
      findings.push({
        verdict: 'duplicated',
        reason: `chunk seq ${chunk.seq} received again after ${expected - 1}`,
      });
    }
    expected = Math.max(expected, chunk.seq + 1);
  }
  return findings;
}

/**
 * Where `delivered` first leaves `reference`: undefined while it is a prefix of it. At the first
 * difference i, tokens re-sent (delivered[i..i+k) == reference[i-k..i), then back on track) are a
 * duplicate, tokens skipped (delivered[i..] continues reference[i+k..]) a gap, anything else a
 * different completion. Smallest k first, duplicates before gaps.
 */
function compareToReference(delivered: readonly number[], reference: readonly number[]): Finding | undefined {
  const i = firstDifference(delivered, reference);
  if (i === delivered.length) return undefined;
  for (let k = 1; k <= i && i + k <= delivered.length; k++) {
    if (equalRange(delivered, i, reference, i - k, k) && isPrefixAt(delivered.slice(i + k), reference, i)) {
      return { verdict: 'duplicated', reason: `tokens ${i - k}..${i - 1} re-sent at index ${i}` };
    }
  }
  for (let k = 1; i + k < reference.length; k++) {
    if (isPrefixAt(delivered.slice(i), reference, i + k)) {
      return { verdict: 'gap', reason: `${k} reference token(s) missing at index ${i}` };
    }
  }
  return {
    verdict: 'completed_different',
    reason: `first differing token at index ${i}: got ${delivered[i]}, reference ${reference[i] ?? 'end'}`,
  };
}

/**
 * Without a reference to compare against: a chunk of a new attempt whose tokens equal the tokens
 * delivered just before it is the resumed attempt re-sending them.
 */
function resentAfterAttemptChange(chunks: readonly ChunkRecord[]): Finding[] {
  const findings: Finding[] = [];
  const soFar: number[] = [];
  let previous: ChunkRecord | undefined;
  for (const chunk of chunks) {
    const n = chunk.tokenIds.length;
    if (
      previous?.attempt !== undefined &&
      chunk.attempt !== undefined &&
      chunk.attempt !== previous.attempt &&
      n > 0 &&
      n <= soFar.length &&
      equalRange(chunk.tokenIds, 0, soFar, soFar.length - n, n)
    ) {
      findings.push({
        verdict: 'duplicated',
        reason: `attempt ${chunk.attempt} re-sent the last ${n} token(s) at chunk seq ${chunk.seq}`,
      });
    }
    soFar.push(...chunk.tokenIds);
    previous = chunk;
  }
  return findings;
}

/** How the operation ended: lost, hung, an error, or (for ok) a token count that does not add up. */
function checkEnd(
  op: Operation,
  /** The tokens delivered; undefined where the transport carries text only (no count check). */
  delivered: readonly number[] | undefined,
  allowedErrors: ReadonlySet<string>,
  slackMs: number,
): Finding[] {
  const outcome = op.outcome as Operation['outcome'] | undefined;
  const limit = op.deadline + slackMs;
  const lastChunkAt = op.chunks.reduce((max, c) => Math.max(max, c.at), -Infinity);
  if (outcome === undefined || outcome.kind === 'unknown') {
    // No end. Chunks past the deadline mean the stream was still open then (hung); silence
    // before it means the end was dropped (lost).
    if (lastChunkAt > limit) {
      return [
        {
          verdict: 'hung',
          reason: `no end, still streaming ${lastChunkAt - op.deadline} ms past its deadline`,
        },
      ];
    }
    const gaveUp = outcome ? ` (client gave up ${outcome.at - op.invokedAt} ms after invoking)` : '';
    return [{ verdict: 'lost', reason: `no end${gaveUp}` }];
  }
  const findings: Finding[] = [];
  if (outcome.at > limit) {
    findings.push({ verdict: 'hung', reason: `ended ${outcome.at - op.deadline} ms past its deadline` });
  }
  if (outcome.kind === 'error') {
    const allowed = allowedErrors.has(outcome.code);
    findings.push({
      verdict: allowed ? 'error_allowed' : 'error_disallowed',
      reason: `error ${outcome.code}${allowed ? ' (allowed)' : ''}: ${outcome.message}`,
    });
  } else if (delivered !== undefined && delivered.length !== outcome.completionTokens) {
    findings.push({
      verdict: delivered.length > outcome.completionTokens ? 'duplicated' : 'gap',
      reason: `${delivered.length} token(s) delivered, outcome counts ${outcome.completionTokens}`,
    });
  }
  return findings;
}

/** An ok operation that must be exact: same tokens, same text, same finish reason. */
function compareCompleted(
  op: Operation,
  delivered: readonly number[],
  reference: Reference,
  finishReason: string,
  version: string | undefined,
): Finding {
  const i = firstDifference(delivered, reference.tokenIds);
  if (i < delivered.length || i < reference.tokenIds.length) {
    return {
      verdict: 'completed_different',
      reason: `first differing token at index ${i}: got ${delivered[i] ?? 'end'}, reference ${reference.tokenIds[i] ?? 'end'}`,
    };
  }
  const text = op.chunks.map((c) => c.text).join('');
  if (text !== reference.text) {
    const c = firstDifference([...text], [...reference.text]);
    return { verdict: 'completed_different', reason: `same tokens, text differs at character ${c}` };
  }
  if (finishReason !== reference.finishReason) {
    return {
      verdict: 'completed_different',
      reason: `finish reason ${finishReason}, reference ${reference.finishReason}`,
    };
  }
  const on = version === undefined ? '' : ` of version ${version}`;
  return { verdict: 'exact', reason: `matches its reference${on} (${delivered.length} tokens)` };
}

function uncheckedReason(op: Operation): string {
  const { temperature, seed } = op.request;
  const sampling = `temperature ${temperature ?? '1 (default)'}, ${seed === undefined ? 'unseeded' : `seed ${seed}`}`;
  if (mustMatchReference(op.request))
    return `${sampling}: no reference recorded, checked for gaps and duplicates only`;
  return `${sampling}: not reproducible, checked for gaps and duplicates only`;
}

/** The first index where `a` and `b` differ; the shorter length when one is a prefix of the other. */
function firstDifference<T>(a: readonly T[], b: readonly T[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function equalRange(
  a: readonly number[],
  from: number,
  b: readonly number[],
  bFrom: number,
  n: number,
): boolean {
  for (let j = 0; j < n; j++) if (a[from + j] !== b[bFrom + j]) return false;
  return true;
}

/** Whether `part` equals `whole` from `at`, for part's whole length. */
function isPrefixAt(part: readonly number[], whole: readonly number[], at: number): boolean {
  return at + part.length <= whole.length && equalRange(part, 0, whole, at, part.length);
}

/**
 * An operation sent through a bridge's HTTP API, compared by text: the OpenAI answers carry text,
 * not token ids. The API has no resume, so a client's retry (same `x-request-id`) restarts the
 * generation, and its chunks carry the attempt they came in. Each attempt's seq runs 0, 1, …
 * on its own; for an exact request every attempt's text must be a prefix of the reference text
 * (a restart reproduces what the client already showed, so it can skip it: nothing shown twice,
 * nothing different), and the completed one equal to it, with the reference's finish reason and
 * token count (from `usage`). A hot request is checked for gaps and duplicates within the
 * attempt that completed; an earlier attempt of it is only noted (its restart samples anew).
 */
export function checkTextOperation(
  op: Operation,
  allowedErrors: ReadonlySet<string>,
  slackMs = 0,
): OperationCheck {
  const attempts = chunksByAttempt(op.chunks);
  const findings: Finding[] = attempts.flatMap(([attempt, chunks]) =>
    checkSeq(chunks).map((f) => ({ ...f, reason: `attempt ${attempt}: ${f.reason}` })),
  );
  const outcome = op.outcome as Operation['outcome'] | undefined;
  const completed = outcome?.kind === 'ok';
  // Each attempt is a generation of its own (a retry restarts it, maybe on another version): one
  // version within it, and the completed one ends on the version its chunks came from.
  const lastAttempt = attempts[attempts.length - 1]?.[0];
  const judged = attempts.map(([attempt, chunks]) => {
    const last = attempt === lastAttempt;
    const ended = last && outcome?.kind === 'ok' ? outcome.modelVersion : undefined;
    const label = `attempt ${attempt}: `;
    const versions = checkVersions(chunks, ended, label);
    const ref = referenceFor(op, versions.version, last && completed, label);
    findings.push(...versions.findings, ...ref.findings);
    return { attempt, version: versions.version, reference: ref.reference };
  });
  if (attempts.length === 0 && completed) {
    findings.push(...referenceFor(op, outcome.modelVersion, true, '').findings);
  }
  const exactness =
    mustMatchReference(op.request) && (op.reference !== undefined || op.references !== undefined);
  const texts = attempts.map(([attempt, chunks]): [number, string] => [
    attempt,
    chunks.map((c) => c.text).join(''),
  ]);
  if (exactness) {
    for (const [k, [attempt, text]] of texts.entries()) {
      const ref = judged[k]?.reference;
      if (ref === undefined) continue;
      const finding = compareToReference(codePoints(text), codePoints(ref.text));
      if (finding) findings.push({ ...finding, reason: `attempt ${attempt} (text): ${finding.reason}` });
    }
  }
  findings.push(...checkEnd(op, undefined, allowedErrors, slackMs));
  const failing = findings.some((f) => !PASSING_VERDICTS.has(f.verdict));
  if (outcome?.kind === 'ok' && !failing) {
    const last = texts[texts.length - 1]?.[1] ?? '';
    const restarts = texts.length > 1 ? ` after ${texts.length - 1} restarted attempt(s)` : '';
    const lastJudged = judged[judged.length - 1];
    const reference = op.references === undefined ? op.reference : (lastJudged?.reference ?? undefined);
    if (exactness && reference !== undefined) {
      findings.push(compareCompletedText(last, outcome, reference, restarts, lastJudged?.version));
    } else {
      findings.push({ verdict: 'unchecked', reason: `${uncheckedReason(op)}${restarts}` });
    }
  }
  findings.sort((a, b) => VERDICT_ORDER.indexOf(a.verdict) - VERDICT_ORDER.indexOf(b.verdict));
  const first = findings[0] ?? { verdict: 'lost', reason: 'no outcome' };
  return { id: op.id, verdict: first.verdict, reason: findings.map((f) => f.reason).join('; '), findings };
}

/** Chunks grouped by attempt (absent: 1), in the order the attempts came. */
function chunksByAttempt(chunks: readonly ChunkRecord[]): Array<[number, ChunkRecord[]]> {
  const groups = new Map<number, ChunkRecord[]>();
  for (const c of chunks) {
    const a = c.attempt ?? 1;
    const group = groups.get(a) ?? [];
    group.push(c);
    groups.set(a, group);
  }
  return [...groups.entries()];
}

/** A string as code points, so that the token comparison finds text duplicates and gaps too. */
function codePoints(text: string): number[] {
  return [...text].map((c) => c.codePointAt(0) ?? 0);
}

function compareCompletedText(
  text: string,
  outcome: { finishReason: string; completionTokens: number },
  reference: Reference,
  restarts: string,
  version: string | undefined,
): Finding {
  if (text !== reference.text) {
    const c = firstDifference([...text], [...reference.text]);
    return { verdict: 'completed_different', reason: `text differs from the reference at character ${c}` };
  }
  if (outcome.finishReason !== reference.finishReason) {
    return {
      verdict: 'completed_different',
      reason: `finish reason ${outcome.finishReason}, reference ${reference.finishReason}`,
    };
  }
  if (outcome.completionTokens !== reference.tokenIds.length) {
    return {
      verdict: outcome.completionTokens > reference.tokenIds.length ? 'duplicated' : 'gap',
      reason: `usage counts ${outcome.completionTokens} completion token(s), reference ${reference.tokenIds.length}`,
    };
  }
  const on = version === undefined ? '' : ` of version ${version}`;
  return {
    verdict: 'exact',
    reason: `text matches its reference${on} (${reference.tokenIds.length} tokens)${restarts}`,
  };
}
