/**
 * The one codec of stored rollout records (one KV value per model id in ROLLOUTS_BUCKET). Every
 * writer (`switchyard rollout`, the driving collector) encodes with {@link encodeRolloutRecord}
 * and every reader decodes with {@link decodeRolloutRecord}, which checks each field: a record is
 * written by operators and collectors, but a router that follows a malformed weight would send
 * traffic to the wrong version, so nothing is taken on trust. Routers read only the fields that
 * route ({@link decodeRoutingView}): a record whose evidence a newer collector extends must not
 * stop them from following its weight.
 */
import { ID_PATTERN, MODEL_VERSION_PATTERN } from '../cluster/subjects.ts';
import { InvalidRequestError } from '../errors/errors.ts';
import { MAX_ACTOR_LENGTH } from '../registry/version-manifest.ts';
import {
  encodeObject,
  invalidField,
  parseObject,
  readEnum,
  readInt,
  readNumber,
  readObject,
  readOptional,
  readPattern,
  readString,
  type WireObject,
} from '../validation/fields.ts';
import { readPolicy } from './policy.ts';
import {
  CHECK_NAMES,
  MAX_DECISIONS,
  ROLLOUT_FORMAT_VERSION,
  ROLLOUT_STATES,
  type ArmStats,
  type CheckResult,
  type RolloutDecision,
  type RolloutPolicy,
  type RolloutRecord,
  type RolloutState,
} from './types.ts';

/** Most steps a rollout has (as `--steps` allows). */
export const MAX_STEPS = 20;
/** Most replicas a record lists as swapped to the canary. */
export const MAX_CANARY_REPLICAS = 1_024;
/** Longest reason (of the record, a decision, a check). */
export const MAX_ROLLOUT_REASON_LENGTH = 1_024;
/**
 * A rollout id: what `rollout start` mints (`<model>@<version>-<random>`), so the model id, a
 * version and a suffix fit.
 */
export const ROLLOUT_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,160}$/;
/** {@link ROLLOUT_ID_PATTERN} as error messages say it. */
export const ROLLOUT_ID_SHAPE = '[A-Za-z0-9._:@-]{1,160}';
/** Longest ISO 8601 time accepted. */
const MAX_TIME_LENGTH = 64;

const ID_SHAPE = '[A-Za-z0-9_-]{1,64}';
const VERSION_SHAPE = '[A-Za-z0-9._-]{1,64}';
const VERDICTS = ['pass', 'fail', 'inconclusive'] as const;
const ACTIONS = ['wait', 'advance', 'promote', 'rollback', 'hold', 'abort'] as const;
const TESTS = ['non_inferiority', 'superiority'] as const;

/** What a router needs of a rollout to split traffic. */
export interface RoutingView {
  id: string;
  model: string;
  stable: string;
  canary: string;
  /** Percent of new requests on the canary. */
  weight: number;
  state: RolloutState;
}

/** Wraps a field error so that it names the record's key. */
function decodeWith<T>(data: Uint8Array | string, source: string, read: (o: WireObject) => T): T {
  try {
    return read(parseObject(data, 'rollout record'));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new InvalidRequestError(`${source}: invalid rollout record: ${message}`, { cause: err });
  }
}

function readTime(field: string, value: unknown): string {
  const at = readString(field, value, { minLength: 1, maxLength: MAX_TIME_LENGTH });
  if (!Number.isFinite(Date.parse(at))) invalidField(field, 'an ISO 8601 time', at);
  return at;
}

const readId = (field: string, value: unknown): string => readPattern(field, value, ID_PATTERN, ID_SHAPE);
const readVersion = (field: string, value: unknown): string =>
  readPattern(field, value, MODEL_VERSION_PATTERN, VERSION_SHAPE);
const readReason = (field: string, value: unknown): string =>
  readString(field, value, { maxLength: MAX_ROLLOUT_REASON_LENGTH });
const readActor = (field: string, value: unknown): string =>
  readString(field, value, { minLength: 1, maxLength: MAX_ACTOR_LENGTH });
const readWeight = (field: string, value: unknown): number => readNumber(field, value, { min: 0, max: 100 });

function readArray(field: string, value: unknown, max: number): unknown[] {
  if (!Array.isArray(value)) invalidField(field, `an array of at most ${max} entries`, value);
  if (value.length > max) {
    throw new InvalidRequestError(`${field} must have at most ${max} entries, got ${value.length}`);
  }
  return value;
}

/** Canary weights: strictly ascending, each in (0, 100], the last 100. */
function readSteps(field: string, value: unknown): number[] {
  const raw = readArray(field, value, MAX_STEPS);
  if (raw.length === 0) invalidField(field, 'a non-empty array of weights', value);
  const steps = raw.map((s, i) => readNumber(`${field}[${i}]`, s, { min: 0, max: 100, exclusiveMin: true }));
  for (let i = 1; i < steps.length; i++) {
    if (steps[i]! <= steps[i - 1]!) invalidField(`${field}[${i}]`, `above ${steps[i - 1]}`, steps[i]);
  }
  if (steps[steps.length - 1] !== 100) invalidField(field, 'weights ending with 100', value);
  return steps;
}

/** The five routing fields and their agreement (the canary is not the stable version). */
function readRoutingFields(o: WireObject): RoutingView {
  readInt('v', o.v, { min: ROLLOUT_FORMAT_VERSION, max: ROLLOUT_FORMAT_VERSION });
  const view: RoutingView = {
    id: readPattern('id', o.id, ROLLOUT_ID_PATTERN, ROLLOUT_ID_SHAPE),
    model: readId('model', o.model),
    stable: readVersion('stable', o.stable),
    canary: readVersion('canary', o.canary),
    weight: readWeight('weight', o.weight),
    state: readEnum('state', o.state, ROLLOUT_STATES),
  };
  if (view.canary === view.stable)
    invalidField('canary', `a version other than stable '${view.stable}'`, view.canary);
  return view;
}

function readArmStats(field: string, value: unknown): ArmStats {
  const o = readObject(field, value);
  return {
    n: readInt(`${field}.n`, o.n, { min: 0, max: Infinity }),
    mean: readNumber(`${field}.mean`, o.mean, { min: -Infinity, max: Infinity }),
    sd: readNumber(`${field}.sd`, o.sd, { min: 0, max: Infinity }),
  };
}

function readFinite(field: string, value: unknown): number {
  return readNumber(field, value, { min: -Infinity, max: Infinity });
}

function readCheckResult(field: string, value: unknown): CheckResult {
  const o = readObject(field, value);
  return {
    check: readEnum(`${field}.check`, o.check, CHECK_NAMES),
    test: readEnum(`${field}.test`, o.test, TESTS),
    verdict: readEnum(`${field}.verdict`, o.verdict, VERDICTS),
    canary: readArmStats(`${field}.canary`, o.canary),
    stable: readArmStats(`${field}.stable`, o.stable),
    worse_by: readFinite(`${field}.worse_by`, o.worse_by),
    worse_by_lower: readFinite(`${field}.worse_by_lower`, o.worse_by_lower),
    worse_by_upper: readFinite(`${field}.worse_by_upper`, o.worse_by_upper),
    threshold: readFinite(`${field}.threshold`, o.threshold),
    confidence: readNumber(`${field}.confidence`, o.confidence, { min: 0, max: 1 }),
    min_samples: readInt(`${field}.min_samples`, o.min_samples, { min: 0, max: Infinity }),
    reason: readReason(`${field}.reason`, o.reason),
  };
}

function readDecision(field: string, value: unknown): RolloutDecision {
  const o = readObject(field, value);
  const window = readObject(`${field}.window`, o.window);
  return {
    at: readTime(`${field}.at`, o.at),
    step: readInt(`${field}.step`, o.step, { min: 0, max: MAX_STEPS - 1 }),
    weight: readWeight(`${field}.weight`, o.weight),
    look: readInt(`${field}.look`, o.look, { min: 0, max: Infinity }),
    window: {
      from: readTime(`${field}.window.from`, window.from),
      to: readTime(`${field}.window.to`, window.to),
    },
    verdict: readEnum(`${field}.verdict`, o.verdict, VERDICTS),
    action: readEnum(`${field}.action`, o.action, ACTIONS),
    checks: readArray(`${field}.checks`, o.checks, CHECK_NAMES.length).map((c, i) =>
      readCheckResult(`${field}.checks[${i}]`, c),
    ),
    by: readActor(`${field}.by`, o.by),
    reason: readReason(`${field}.reason`, o.reason),
  };
}

/** The one decoder of rollout records; `source` (bucket and key) names the origin in errors. */
export function decodeRolloutRecord(data: Uint8Array | string, source: string): RolloutRecord {
  return decodeWith(data, source, (o) => {
    const view = readRoutingFields(o);
    const steps = readSteps('steps', o.steps);
    const driver = readOptional(o, 'driver', readId);
    return {
      v: ROLLOUT_FORMAT_VERSION,
      id: view.id,
      model: view.model,
      stable: view.stable,
      canary: view.canary,
      alias: readVersion('alias', o.alias),
      steps,
      step: readInt('step', o.step, { min: 0, max: steps.length - 1 }),
      weight: view.weight,
      state: view.state,
      canary_replicas_min: readInt('canary_replicas_min', o.canary_replicas_min, {
        min: 1,
        max: MAX_CANARY_REPLICAS,
      }),
      canary_replicas: readArray('canary_replicas', o.canary_replicas, MAX_CANARY_REPLICAS).map((r, i) =>
        readId(`canary_replicas[${i}]`, r),
      ),
      policy: readPolicy('policy', o.policy),
      by: readActor('by', o.by),
      started_at: readTime('started_at', o.started_at),
      step_started_at: readTime('step_started_at', o.step_started_at),
      updated_at: readTime('updated_at', o.updated_at),
      ...(driver !== undefined ? { driver } : {}),
      reason: readReason('reason', o.reason),
      decisions: readArray('decisions', o.decisions, MAX_DECISIONS).map((d, i) =>
        readDecision(`decisions[${i}]`, d),
      ),
    };
  });
}

/** Decodes only what routes (id, model, versions, weight, state), as strictly as the full decoder. */
export function decodeRoutingView(data: Uint8Array | string, source: string): RoutingView {
  return decodeWith(data, source, readRoutingFields);
}

function encodeCheck(c: CheckResult): Record<string, unknown> {
  const stats = (s: ArmStats): Record<string, unknown> => ({ n: s.n, mean: s.mean, sd: s.sd });
  return {
    check: c.check,
    test: c.test,
    verdict: c.verdict,
    canary: stats(c.canary),
    stable: stats(c.stable),
    worse_by: c.worse_by,
    worse_by_lower: c.worse_by_lower,
    worse_by_upper: c.worse_by_upper,
    threshold: c.threshold,
    confidence: c.confidence,
    min_samples: c.min_samples,
    reason: c.reason,
  };
}

function encodeDecision(d: RolloutDecision): Record<string, unknown> {
  return {
    at: d.at,
    step: d.step,
    weight: d.weight,
    look: d.look,
    window: { from: d.window.from, to: d.window.to },
    verdict: d.verdict,
    action: d.action,
    checks: d.checks.map(encodeCheck),
    by: d.by,
    reason: d.reason,
  };
}

function encodePolicy(p: RolloutPolicy): Record<string, unknown> {
  const checks: Record<string, unknown> = {};
  for (const name of CHECK_NAMES) {
    const c = p.checks[name];
    if (c === undefined) continue;
    checks[name] = {
      margin: c.margin,
      min_samples: c.min_samples,
      confidence: c.confidence,
      ...(c.require_better === true ? { require_better: true } : {}),
    };
  }
  return {
    checks,
    interval_ms: p.interval_ms,
    min_step_ms: p.min_step_ms,
    max_looks: p.max_looks,
    on_inconclusive: p.on_inconclusive,
  };
}

/** Serialises a record with its fields in one fixed order (so equal records are equal bytes). */
export function encodeRolloutRecord(r: RolloutRecord): Uint8Array {
  return encodeObject({
    v: r.v,
    id: r.id,
    model: r.model,
    stable: r.stable,
    canary: r.canary,
    alias: r.alias,
    steps: r.steps,
    step: r.step,
    weight: r.weight,
    state: r.state,
    canary_replicas_min: r.canary_replicas_min,
    canary_replicas: r.canary_replicas,
    policy: encodePolicy(r.policy),
    by: r.by,
    started_at: r.started_at,
    step_started_at: r.step_started_at,
    updated_at: r.updated_at,
    driver: r.driver,
    reason: r.reason,
    decisions: r.decisions.map(encodeDecision),
  });
}
