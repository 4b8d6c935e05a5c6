/**
 * Options of the shared rate limits (`rate-limit.ts`): where the counters live and what happens
 * when they cannot be reached. Why fail open is the default is argued in `rate-limit.ts`.
 */
import { checkMs } from '../config/checks.ts';
import { StartupError } from '../errors/errors.ts';

/** Length of one counting window. */
export const RATE_WINDOW_MS = 60_000;
/** The KV bucket holding the windows; every bridge of a cluster must use the same one. */
export const DEFAULT_RATE_LIMIT_BUCKET = 'sy_rate_limits';
/** Bucket TTL: a window's last write must outlive its minute; two minutes leave room for skew. */
export const DEFAULT_RATE_LIMIT_TTL_MS = 2 * RATE_WINDOW_MS;
/** A KV request that takes longer counts as the store being unreachable. */
export const DEFAULT_RATE_LIMIT_KV_TIMEOUT_MS = 1_000;
/** After a store failure, decide without the store for this long before trying it again. */
export const DEFAULT_RATE_LIMIT_STORE_RETRY_MS = 2_000;
/** What to do when the store is unreachable (see `rate-limit.ts` for why open is the default). */
export const RATE_LIMIT_FAIL_MODES = ['open', 'closed'] as const;
/** One of {@link RATE_LIMIT_FAIL_MODES}. */
export type RateLimitFailMode = (typeof RATE_LIMIT_FAIL_MODES)[number];
/** @see RATE_LIMIT_FAIL_MODES */
export const DEFAULT_RATE_LIMIT_FAIL_MODE: RateLimitFailMode = 'open';
/** Bucket names, as nats.js accepts them. */
const BUCKET_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Where the shared counters live and what happens when they cannot be reached. */
export interface RateLimitOptions {
  /** KV bucket of the windows. @default DEFAULT_RATE_LIMIT_BUCKET ('sy_rate_limits') */
  bucket?: string;
  /** Bucket TTL in ms, more than one window. Applies when this bridge creates the bucket. @default DEFAULT_RATE_LIMIT_TTL_MS (120000) */
  ttlMs?: number;
  /** `open` admits without shared limits while the store is unreachable; `closed` answers 503. @default 'open' */
  failMode?: RateLimitFailMode;
  /** Timeout of one KV request in ms. @default DEFAULT_RATE_LIMIT_KV_TIMEOUT_MS (1000) */
  kvTimeoutMs?: number;
  /** After a store failure, how long to decide without it, in ms. @default DEFAULT_RATE_LIMIT_STORE_RETRY_MS (2000) */
  storeRetryMs?: number;
}

/** {@link RateLimitOptions} checked, with defaults filled in. */
export interface CompiledRateLimitOptions {
  bucket: string;
  ttlMs: number;
  failMode: RateLimitFailMode;
  kvTimeoutMs: number;
  storeRetryMs: number;
}

/** Fills defaults and rejects bad values with a message naming the option. */
export function compileRateLimitOptions(opts: RateLimitOptions = {}): CompiledRateLimitOptions {
  const bucket = opts.bucket ?? DEFAULT_RATE_LIMIT_BUCKET;
  if (!BUCKET_PATTERN.test(bucket)) {
    throw new StartupError('config', `rateLimitBucket must match [A-Za-z0-9_-]{1,64}, got '${bucket}'`);
  }
  const failMode = opts.failMode ?? DEFAULT_RATE_LIMIT_FAIL_MODE;
  if (!RATE_LIMIT_FAIL_MODES.includes(failMode)) {
    throw new StartupError('config', `rateLimitFailMode must be open or closed, got '${String(failMode)}'`);
  }
  return {
    bucket,
    ttlMs: checkMs('rateLimitTtlMs', opts.ttlMs, DEFAULT_RATE_LIMIT_TTL_MS, RATE_WINDOW_MS + 1),
    failMode,
    kvTimeoutMs: checkMs('rateLimitKvTimeoutMs', opts.kvTimeoutMs, DEFAULT_RATE_LIMIT_KV_TIMEOUT_MS),
    storeRetryMs: checkMs('rateLimitStoreRetryMs', opts.storeRetryMs, DEFAULT_RATE_LIMIT_STORE_RETRY_MS, 0),
  };
}
