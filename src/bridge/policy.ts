/**
 * The bridge's per-request policies, behind small interfaces so the HTTP server does not know
 * how they are kept: API keys, rate limits shared by all bridges (NATS KV), and the response
 * cache (NATS KV). Each has a disabled implementation for when it is not configured.
 */
import type { GenerateRequest } from '../cluster/messages/generate.ts';

/** Who is calling: the key's id (never the key itself) and its limits. */
export interface Caller {
  /** Stable id of the API key (e.g. its name in the keys file), or 'anonymous' when keys are off. */
  keyId: string;
  /** Requests per minute, shared by all bridges; undefined = unlimited. */
  rpm?: number;
  /** Tokens (prompt + completion) per minute, shared by all bridges; undefined = unlimited. */
  tpm?: number;
  /** Requests at once on one bridge; undefined = unlimited. */
  maxConcurrency?: number;
}

/** Checks `Authorization: Bearer <key>`. */
export interface Authenticator {
  /** False when no keys are configured: every request is the anonymous caller. */
  readonly enabled: boolean;
  /** The caller, or throws `UnauthorizedError` (missing or unknown key). Constant-time comparison. */
  authenticate(authorization: string | undefined): Caller;
}

/** A grant from the rate limiter; `release` must be called exactly once when the request ends. */
export interface Admission {
  /** Reports the request's tokens (prompt + completion) against the caller's tokens-per-minute. */
  release(tokens: number): void;
}

/** Per-key limits. */
export interface RateLimiter {
  /**
   * Admits a request or throws `RateLimitedError` (with retryAfterMs) at once. `requests` is
   * what it counts against requests per minute: its prompts (one HTTP request with a prompt
   * array of N, or n choices, is N requests), 1 when absent.
   */
  admit(caller: Caller, estimatedTokens: number, requests?: number): Promise<Admission>;
}

/** A cached response: the whole generation, replayable as a stream or a body. */
export interface CachedGeneration {
  text: string;
  tokenIds: number[];
  finishReason: 'stop' | 'length';
  promptTokens: number;
  completionTokens: number;
}

/** The opt-in response cache for deterministic requests. */
export interface ResponseCache {
  readonly enabled: boolean;
  /**
   * The cache key of a request asked by `tenant` (an API key's id, `tenancy.ts`), or undefined
   * when it must not be cached (sampled without a seed). The key covers the model version, so a
   * hit never crosses versions, and the tenant, so a hit never tells one key what another asked.
   */
  keyOf(req: GenerateRequest, modelVersion: string, tenant: string): string | undefined;
  get(key: string): Promise<CachedGeneration | undefined>;
  put(key: string, value: CachedGeneration): Promise<void>;
}
