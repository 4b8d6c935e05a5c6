/** TEMPORARY stub: the judge branch brings the real judge. */
import type { CollectedRecord } from '../collector/record.ts';
import type { CheckResult, RolloutPolicy, Verdict } from './types.ts';

export function judge(
  records: Iterable<CollectedRecord>,
  rollout: { id: string; from: number; to: number },
  policy: RolloutPolicy,
): { verdict: Verdict; checks: CheckResult[]; samples: { stable: number; canary: number } } {
  void records;
  void rollout;
  void policy;
  return { verdict: 'inconclusive', checks: [], samples: { stable: 0, canary: 0 } };
}
