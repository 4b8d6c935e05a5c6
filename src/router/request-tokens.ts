/**
 * How many tokens of KV budget a request will reserve on a replica, estimated without a
 * tokenizer: routers do not tokenize (that costs tens of milliseconds per long prompt, DESIGN.md
 * "Tokenizing is not free", and the replica does it anyway). A replica reserves prompt + resumed
 * + max_tokens (`src/engine/scheduler.ts`); this mirrors that sum. The estimate only steers the
 * choice of replica: a replica that cannot hold the request after all answers `busy`, and the
 * router fails over.
 */
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import { DEFAULT_MAX_TOKENS_CAP } from '../cluster/messages/params.ts';

/**
 * Characters per token assumed for text prompts. The bundled byte-level BPE tokenizer averages
 * 2.78 characters per token over `models/corpus` (2.0 on numbers and code, 2.6 on dialogue,
 * 2.9–3.05 on prose). 3 slightly underestimates most text rather than overestimating: an
 * underestimate costs one `busy` and a failover, an overestimate refuses a request a replica
 * could have taken.
 */
export const ESTIMATE_CHARS_PER_TOKEN = 3;

/**
 * New tokens assumed when a request gives no max_tokens: the engine's default cap (it generates
 * up to the rest of the context, capped by this), as a replica started with defaults reserves.
 */
export const ESTIMATE_DEFAULT_MAX_TOKENS = DEFAULT_MAX_TOKENS_CAP;

/** About how many tokens of KV budget `req` will reserve: prompt + resumed tokens + max_tokens. */
export function estimateRequestTokens(req: GenerateRequest): number {
  return (
    promptTokens(req) + (req.resumeTokenIds?.length ?? 0) + (req.maxTokens ?? ESTIMATE_DEFAULT_MAX_TOKENS)
  );
}

function promptTokens(req: GenerateRequest): number {
  if (req.promptTokenIds !== undefined) return req.promptTokenIds.length;
  let chars = req.prompt?.length ?? 0;
  // The chat template adds a few tokens per message; content dominates, and under-counting is safe.
  for (const m of req.messages ?? []) chars += m.content.length;
  return Math.ceil(chars / ESTIMATE_CHARS_PER_TOKEN);
}
