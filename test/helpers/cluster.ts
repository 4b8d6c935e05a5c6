/**
 * Actors as real child processes for the integration tests: the launcher is the chaos suite's
 * (chaos/actors.ts), re-exported here so that every test keeps importing from this file.
 */
export { ACTOR_START_TIMEOUT_MS, ActorProcess, injectFault, killAll } from '../../chaos/actors.ts';

/** Waits until `check` is true, polling; fails after `timeoutMs` with `what`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
