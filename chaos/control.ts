/** The verdict of a control scenario (`expectCaught`): it passes when the checker caught it. */
import { PASSING_VERDICTS, type CheckResult } from './history/checker.ts';

/**
 * What the checker caught in a control scenario's history: "caught: ..." when a fault is
 * unverified and nothing else is wrong (every operation passed, every other check held), else
 * undefined (the control failed: the mistarget went unnoticed, or something else broke).
 */
export function caughtMistarget(check: CheckResult): string | undefined {
  const unverified = check.faults.filter((f) => !f.verified);
  const opsOk = check.operations.every((op) => PASSING_VERDICTS.has(op.verdict));
  if (unverified.length === 0 || !opsOk || !check.checks.every((c) => c.ok)) return undefined;
  return `caught: unverified fault ${unverified.map((f) => `${f.fault.name} on ${f.fault.target}`).join('; ')}`;
}
