/**
 * The one resume builder: how a requester that lost its responder mid-stream asks the next one
 * to continue. Routers (failing over between replicas) and the client library (resending to
 * another router) both use it, so the two cannot disagree about what a resume means.
 *
 * A resume sends the tokens already delivered as `resume_token_ids` (never text), the settled
 * seed, and the max_tokens that remain of the settled budget. When every token was delivered but
 * the end was lost, what remains is 0: the responder then ends at once with the finish reason
 * the tokens imply (docs/protocol.md, "Resuming"), so a lost end never turns into a refusal, a
 * repeat of held-back text, or more tokens than an uninterrupted run would have made.
 */
import type { GenerateRequest } from './messages/generate.ts';

/** What a requester knows when it resumes. */
export interface ResumePoint {
  /** The request as this requester first sent it (its own resume tokens, if any, included). */
  request: GenerateRequest;
  /** Tokens delivered downstream since then, in order. */
  delivered: readonly number[];
  /**
   * max_tokens of `request` as settled by the first responder that announced it (the request's
   * own value, or the engine's default when it gave none); undefined while nobody has said.
   */
  maxTokens: number | undefined;
  /** The effective seed, once known (a router picks one for sampled requests without). */
  seed: number | undefined;
}

/** The request that continues the stream exactly where `point` left it. Pure. */
export function buildResume(point: ResumePoint): GenerateRequest {
  const { request, delivered, maxTokens, seed } = point;
  const body: GenerateRequest = { ...request };
  if (delivered.length > 0) body.resumeTokenIds = [...(request.resumeTokenIds ?? []), ...delivered];
  if (maxTokens !== undefined) body.maxTokens = Math.max(0, maxTokens - delivered.length);
  if (seed !== undefined) body.seed = seed;
  return body;
}
