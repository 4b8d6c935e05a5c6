/**
 * Creating JetStream resources while a clustered JetStream is still forming: right after its
 * nodes start (or one restarts), the meta group has no leader for a few seconds, and stream or
 * bucket creation answers "no suitable peers for placement" (10005), "JetStream system temporarily
 * unavailable" (10008) or times out. Those answers mean "not yet", not "never": the actors that
 * create resources at start-up (collector, registry, rollouts, the bridge's rate limits) retry them
 * for a while instead of failing. Anything else (JetStream not enabled, a bad config) fails at once.
 */
import { TimeoutError } from '@nats-io/nats-core';
import { JetStreamApiError } from '@nats-io/jetstream';
import { setTimeout as sleep } from 'node:timers/promises';

/** Server codes that mean the JetStream cluster is not ready yet. */
const FORMING_CODES: ReadonlySet<number> = new Set([10005, 10008]);
/** How long start-up waits for a forming cluster by default. */
export const DEFAULT_FORMING_WAIT_MS = 20_000;
const RETRY_MS = 250;

/** True for an answer that a forming JetStream cluster gives. */
export function isJetStreamForming(err: unknown): boolean {
  if (err instanceof TimeoutError) return true;
  if (err instanceof JetStreamApiError) return FORMING_CODES.has(err.code);
  const message = err instanceof Error ? err.message : '';
  return /no suitable peers for placement|temporarily unavailable/i.test(message);
}

/**
 * Runs `create` until it succeeds, fails otherwise than a forming cluster does, or `waitMs` has
 * passed (then the last error is thrown).
 */
export async function whileJetStreamForms<T>(
  create: () => Promise<T>,
  waitMs = DEFAULT_FORMING_WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      return await create();
    } catch (err) {
      if (!isJetStreamForming(err) || Date.now() + RETRY_MS > deadline) throw err;
      await sleep(RETRY_MS);
    }
  }
}
