/** What a chaos run's profile sets: load per scenario and the topology's shape. */
import { FULL_SHAPE, type TopologyShape } from './topology.ts';

export type ProfileName = 'short' | 'full';

/** Load per scenario and the topology a profile runs. */
export interface Profile {
  name: ProfileName;
  /** Seconds of load per scenario (in-flight requests still finish). */
  durationMs: number;
  /**
   * How long the load runs before the scenario's fault (the report's "before" window), at most
   * a fifth of the duration.
   */
  beforeMs: number;
  /** Most requests per scenario, over every load client. */
  count: number;
  /** Requests in flight at once, per load client. */
  concurrency: number;
  maxTokens: number;
  /** Each request's deadline. */
  timeoutMs: number;
  shape: TopologyShape;
}

export const PROFILES: Record<ProfileName, Profile> = {
  // Smaller topology allowed (issue 11): 2 replicas load faster, a kill still leaves one.
  short: {
    name: 'short',
    durationMs: 12_000,
    beforeMs: 3_000,
    count: 600,
    concurrency: 4,
    maxTokens: 48,
    timeoutMs: 30_000,
    shape: { ...FULL_SHAPE, replicas: 2, bridges: 1 },
  },
  full: {
    name: 'full',
    durationMs: 40_000,
    beforeMs: 8_000,
    count: 4_000,
    concurrency: 4,
    maxTokens: 96,
    timeoutMs: 60_000,
    shape: FULL_SHAPE,
  },
};
