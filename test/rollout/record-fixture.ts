/** A valid rollout record for tests, with the fields a test sets overriding the defaults. */
import { DEFAULT_POLICY } from '../../src/rollout/policy.ts';
import { ROLLOUT_FORMAT_VERSION, type RolloutRecord } from '../../src/rollout/types.ts';

export function sampleRollout(fields: Partial<RolloutRecord> = {}): RolloutRecord {
  const at = new Date().toISOString();
  return {
    v: ROLLOUT_FORMAT_VERSION,
    id: 'ro-test-1',
    model: 'tiny-gpt2',
    stable: '1',
    canary: '2',
    alias: 'stable',
    steps: [30, 100],
    step: 0,
    weight: 30,
    state: 'running',
    canary_replicas_min: 1,
    canary_replicas: ['rep-v2'],
    policy: DEFAULT_POLICY,
    by: 'test@host',
    started_at: at,
    step_started_at: at,
    updated_at: at,
    reason: 'test',
    decisions: [],
    ...fields,
  };
}
