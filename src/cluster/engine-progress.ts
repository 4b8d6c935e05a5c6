/**
 * The stuck rule, shared by every monitor of replica heartbeats (the router's membership and the
 * bridge's view): "alive" means the inference path moves (DESIGN.md invariant 4). A replica that
 * has work while its progress counter stands still is stuck — unless the step it is running is
 * simply big. A long prefill is one forward pass over thousands of tokens; the heartbeat says when
 * that pass started and how many tokens it covers, and the stall window grows with its size.
 */
import type { ReplicaHeartbeat } from './messages/heartbeat.ts';

/**
 * Extra stall allowance per token of the running step. Generous on purpose: on this 2-core
 * machine the bundled tiny model prefilled 3,570 tokens in one step in 140–170 ms with 2 threads
 * and 220–255 ms with 1 (about 0.04–0.07 ms per token), so a 4,096-token step gets 4.1 s more,
 * about 15–25× what it needs here; real models are slower per token, and a false "stuck" fails
 * every request of the replica over, while a real hang is only noticed a few seconds later.
 */
export const STUCK_ALLOWANCE_MS_PER_TOKEN = 1;

/** Most allowance any step gets, whatever size it announces: a hung engine is found within a minute. */
export const STUCK_ALLOWANCE_MAX_MS = 60_000;

/** What a monitor remembers of a replica's progress between heartbeats. */
export interface ProgressMark {
  /** Local time the progress counter last moved (or the replica was idle). */
  progressAt: number;
  /** Local estimate of when the running step started; undefined between steps. */
  stepStartAt: number | undefined;
}

/** True when the replica reports work: running sequences or a queue. */
export function hasWork(hb: ReplicaHeartbeat): boolean {
  return hb.activeSequences + hb.queueDepth > 0;
}

/** The mark of a replica first heard from at `now`. */
export function firstMark(hb: ReplicaHeartbeat, now: number): ProgressMark {
  return { progressAt: now, stepStartAt: stepStartOf(hb, now) };
}

/**
 * Updates `mark` for heartbeat `hb` received at `now`, `prev` being the one before. The step's
 * start is read against the sender's own `sentAt`, so the two clocks need not agree; a step
 * that was already running at the previous beat keeps its first estimate.
 */
export function noteProgress(
  mark: ProgressMark,
  prev: ReplicaHeartbeat,
  hb: ReplicaHeartbeat,
  now: number,
): void {
  if (hb.progress !== prev.progress || !hasWork(hb)) mark.progressAt = now;
  const started = hb.stepStartedAt ?? null;
  const sameStep = started !== null && started === prev.stepStartedAt && mark.stepStartAt !== undefined;
  if (!sameStep) mark.stepStartAt = stepStartOf(hb, now);
}

/**
 * Times the sender's own expectation for its running step that the step may take before it is
 * stuck: a device measured slow (SwiftShader, a large model) gets the time it needs.
 */
export const STUCK_PACE_MARGIN = 4;

/**
 * Allowance the running step buys, in ms: its size at the fixed per-token rate, or, when the
 * sender measured itself slower, a margin over what it expects the step to take.
 */
export function stepAllowanceMs(hb: ReplicaHeartbeat): number {
  const bySize = (hb.stepTokens ?? 0) * STUCK_ALLOWANCE_MS_PER_TOKEN;
  const byPace = (hb.stepExpectedMs ?? 0) * STUCK_PACE_MARGIN;
  return Math.min(STUCK_ALLOWANCE_MAX_MS, Math.max(bySize, byPace));
}

/**
 * True when the replica has work and its progress stood still for `stuckTimeoutMs` — or, while a
 * step runs, when that step is older than `stuckTimeoutMs` plus its size's allowance. Never
 * stricter than the plain rule: a step's allowance only adds time.
 *
 * Stuck is a verdict on a live process, so it needs evidence: a heartbeat received (`seenAt`)
 * at or past the deadline that still shows no progress. Between beats a monitor knows nothing
 * new; a replica whose beats run late (starved of CPU) is judged when its next beat arrives, and
 * one whose beats stop is the missed-beat rule's. Without `seenAt` the verdict uses `now`.
 */
export function isStuck(
  mark: ProgressMark,
  hb: ReplicaHeartbeat,
  now: number,
  stuckTimeoutMs: number,
  seenAt = now,
): boolean {
  if (!hasWork(hb)) return false;
  let deadline = mark.progressAt + stuckTimeoutMs;
  if (mark.stepStartAt !== undefined) {
    deadline = Math.max(deadline, mark.stepStartAt + stuckTimeoutMs + stepAllowanceMs(hb));
  }
  return Math.min(now, seenAt) >= deadline;
}

function stepStartOf(hb: ReplicaHeartbeat, now: number): number | undefined {
  const started = hb.stepStartedAt ?? null;
  return started === null ? undefined : now - Math.max(0, hb.sentAt - started);
}
