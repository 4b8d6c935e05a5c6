/**
 * The policies of a bridge configured without keys, limits or cache. They are real
 * implementations of the interfaces in `policy.ts` (not `undefined` checks scattered through the
 * request path), so the path is the same whether a policy is on or off.
 */
import type {
  Admission,
  Authenticator,
  CachedGeneration,
  Caller,
  RateLimiter,
  ResponseCache,
} from './policy.ts';

/** The one caller of a bridge without keys. */
export const ANONYMOUS_CALLER: Readonly<Caller> = Object.freeze({ keyId: 'anonymous' });

/** No keys configured: every request is the anonymous caller, whatever it sends. */
export const OPEN_AUTHENTICATOR: Authenticator = {
  enabled: false,
  authenticate: (): Caller => ANONYMOUS_CALLER,
};

const NO_OP_ADMISSION: Admission = { release: () => undefined };

/** No limits: every request is admitted at once. */
export const UNLIMITED_RATE_LIMITER: RateLimiter = {
  admit: (): Promise<Admission> => Promise.resolve(NO_OP_ADMISSION),
};

/** Cache off: no request has a key, nothing is stored. */
export const DISABLED_CACHE: ResponseCache = {
  enabled: false,
  keyOf: (): string | undefined => undefined,
  get: (): Promise<CachedGeneration | undefined> => Promise.resolve(undefined),
  put: (): Promise<void> => Promise.resolve(),
};
