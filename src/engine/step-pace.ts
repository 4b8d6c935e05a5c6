/**
 * How long this engine's forward passes take, measured: what a replica announces so that a
 * monitor gives a step the time this device needs, not the time a fast CPU would. A software
 * Vulkan driver (SwiftShader) or a large model runs a step many times slower than the fixed
 * per-token allowance assumes; a router that knew only the step's size would call it stuck.
 *
 * Two figures, each the maximum of recent passes decaying by DECAY per pass (slow to trust a
 * faster device, quick to follow a slower one): milliseconds per token of large passes (prefills,
 * where the per-token cost dominates) and milliseconds of small passes (decode steps, where the
 * fixed cost does).
 */

/** Passes of at least this many tokens are "large": their cost is counted per token. */
export const LARGE_STEP_TOKENS = 32;
/** Weight an old maximum keeps per new pass. */
const DECAY = 0.98;

export class StepPace {
  private msPerToken = 0;
  private smallStepMs = 0;

  /** Records one finished forward pass of `tokens` tokens that took `ms`. */
  observe(tokens: number, ms: number): void {
    if (!(tokens > 0) || !(ms >= 0)) return;
    if (tokens >= LARGE_STEP_TOKENS) this.msPerToken = Math.max(this.msPerToken * DECAY, ms / tokens);
    else this.smallStepMs = Math.max(this.smallStepMs * DECAY, ms);
  }

  /** The time a pass of `tokens` tokens is expected to take here, from what was measured (0: nothing yet). */
  expectedMs(tokens: number): number {
    if (tokens <= 0) return 0;
    const perToken = tokens * this.msPerToken;
    const small = this.smallStepMs;
    return Math.round(tokens >= LARGE_STEP_TOKENS ? Math.max(perToken, small) : Math.max(small, perToken));
  }
}
