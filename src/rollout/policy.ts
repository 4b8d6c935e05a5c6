/**
 * Rollout policies: the defaults, and the one reader of a policy from a file (`--policy FILE`,
 * YAML or JSON) or from a stored rollout record. A policy names the checks that decide each step
 * (a check left out is not judged), each with a margin, a minimum sample per arm and a
 * confidence level, and how steps are paced.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { InvalidRequestError, StartupError } from '../errors/errors.ts';
import {
  invalidField,
  readEnum,
  readInt,
  readNumber,
  readObject,
  type WireObject,
} from '../validation/fields.ts';
import { CHECK_NAMES, type CheckName, type CheckPolicy, type RolloutPolicy } from './types.ts';

/** The steps of `rollout start` without `--steps`. */
export const DEFAULT_STEPS: readonly number[] = [10, 25, 50, 100];

/** Longest policy file read. */
const MAX_POLICY_BYTES = 64 * 1024;

/**
 * What `rollout start` judges with when no policy is given: every check at 99% one-sided
 * confidence. Error rate may be 2 points worse, latencies 25% slower, the mean rating 0.05 lower
 * and the thumbs-up rate 5 points lower; each arm needs 100 requests (30 rated ones for
 * feedback). A look every 10 s, a step at least a minute long, and a step still undecided after
 * 60 looks (10 minutes) is held for an operator.
 */
export const DEFAULT_POLICY: RolloutPolicy = {
  checks: {
    error_rate: { margin: 0.02, min_samples: 100, confidence: 0.99 },
    ttft: { margin: 0.25, min_samples: 100, confidence: 0.99 },
    tpot: { margin: 0.25, min_samples: 100, confidence: 0.99 },
    rating: { margin: 0.05, min_samples: 30, confidence: 0.99 },
    thumbs_up: { margin: 0.05, min_samples: 30, confidence: 0.99 },
  },
  interval_ms: 10_000,
  min_step_ms: 60_000,
  max_looks: 60,
  on_inconclusive: 'hold',
};

/** Checks that compare feedback, where `require_better` applies. */
const FEEDBACK_CHECKS: ReadonlySet<CheckName> = new Set(['rating', 'thumbs_up']);

const KNOWN_POLICY_FIELDS = new Set(['checks', 'interval_ms', 'min_step_ms', 'max_looks', 'on_inconclusive']);
const KNOWN_CHECK_FIELDS = new Set(['margin', 'min_samples', 'confidence', 'require_better']);

function refuseUnknown(field: string, o: WireObject, known: ReadonlySet<string>): void {
  for (const key of Object.keys(o)) {
    if (!known.has(key)) {
      throw new InvalidRequestError(`${field}: unknown field '${key}' (known: ${[...known].join(', ')})`);
    }
  }
}

function readCheck(field: string, name: CheckName, value: unknown): CheckPolicy {
  const o = readObject(field, value);
  refuseUnknown(field, o, KNOWN_CHECK_FIELDS);
  const relative = name === 'ttft' || name === 'tpot';
  const check: CheckPolicy = {
    margin: readNumber(`${field}.margin`, o.margin, { min: 0, max: relative ? 10 : 1 }),
    min_samples: readInt(`${field}.min_samples`, o.min_samples ?? 30, { min: 2, max: 1_000_000 }),
    confidence: readNumber(`${field}.confidence`, o.confidence ?? 0.99, {
      min: 0.5,
      max: 0.999_999_999,
      exclusiveMin: true,
    }),
  };
  if (o.require_better !== undefined) {
    if (typeof o.require_better !== 'boolean')
      invalidField(`${field}.require_better`, 'a boolean', o.require_better);
    if (o.require_better && !FEEDBACK_CHECKS.has(name)) {
      throw new InvalidRequestError(`${field}.require_better applies to rating and thumbs_up only`);
    }
    if (o.require_better) check.require_better = true;
  }
  return check;
}

/** Reads a policy object (from a file or a stored record); missing pacing fields take the defaults. */
export function readPolicy(field: string, value: unknown): RolloutPolicy {
  const o = readObject(field, value);
  refuseUnknown(field, o, KNOWN_POLICY_FIELDS);
  const checksIn = readObject(`${field}.checks`, o.checks ?? {});
  const checks: RolloutPolicy['checks'] = {};
  for (const [name, check] of Object.entries(checksIn)) {
    const known = readEnum(`${field}.checks key`, name, CHECK_NAMES);
    checks[known] = readCheck(`${field}.checks.${name}`, known, check);
  }
  if (Object.keys(checks).length === 0) {
    throw new InvalidRequestError(
      `${field}.checks names no check: a rollout with nothing to judge would never advance`,
    );
  }
  return {
    checks,
    interval_ms: readInt(`${field}.interval_ms`, o.interval_ms ?? DEFAULT_POLICY.interval_ms, {
      min: 100,
      max: 3_600_000,
    }),
    min_step_ms: readInt(`${field}.min_step_ms`, o.min_step_ms ?? DEFAULT_POLICY.min_step_ms, {
      min: 0,
      max: 7 * 24 * 3_600_000,
    }),
    max_looks: readInt(`${field}.max_looks`, o.max_looks ?? DEFAULT_POLICY.max_looks, {
      min: 1,
      max: 100_000,
    }),
    on_inconclusive: readEnum(
      `${field}.on_inconclusive`,
      o.on_inconclusive ?? DEFAULT_POLICY.on_inconclusive,
      ['hold', 'rollback'] as const,
    ),
  };
}

/** Reads `--policy FILE` (YAML or JSON); a bad file fails start-up with what is wrong in it. */
export async function readPolicyFile(file: string): Promise<RolloutPolicy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new StartupError('config', `cannot read the policy file ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (text.length > MAX_POLICY_BYTES) {
    throw new StartupError('config', `policy file ${file} is over ${MAX_POLICY_BYTES} bytes`);
  }
  try {
    return readPolicy('policy', parseYaml(text));
  } catch (err) {
    throw new StartupError('config', `policy file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Reads `--steps` ("10,25,50,100"): canary weights in percent, strictly ascending, in (0, 100],
 * at most two decimals; 100 (promotion) is appended when missing.
 */
export function parseSteps(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const steps = parts.map((s) => {
    const n = Number(s);
    if (s === '' || !Number.isFinite(n) || n <= 0 || n > 100 || Math.round(n * 100) !== n * 100) {
      throw new InvalidRequestError(
        `--steps: '${s}' is not a weight in percent in (0, 100] with at most two decimals (e.g. 10,25,50,100)`,
      );
    }
    return n;
  });
  return checkSteps('--steps', steps);
}

/** Checks a list of steps (ascending, in (0, 100]) and appends 100 when missing. */
export function checkSteps(field: string, steps: readonly number[]): number[] {
  if (steps.length === 0 || steps.length > 20) {
    throw new InvalidRequestError(`${field}: between 1 and 20 steps, got ${steps.length}`);
  }
  for (let i = 1; i < steps.length; i++) {
    if (steps[i]! <= steps[i - 1]!) {
      throw new InvalidRequestError(`${field}: steps must rise strictly, got ${steps.join(',')}`);
    }
  }
  return steps[steps.length - 1] === 100 ? [...steps] : [...steps, 100];
}
