/**
 * Per-key rate limits shared by every bridge through one NATS KV bucket, plus a per-bridge
 * concurrency cap kept in memory.
 *
 * Each key has fixed one-minute windows, `<keyId>.<epochMinute>` → `{ requests, tokens }`.
 * Counters change only by compare-and-set on the entry's revision (a put with the expected last
 * sequence), so concurrent bridges never lose an increment: the request that takes the last
 * unit of `rpm` is the one whose update lands first, whichever bridge sent it. Old windows are
 * removed by the bucket's TTL (max age), the only expiry nats-server 2.9 honours.
 *
 * How exact it is (also in the README):
 * - Requests per minute count prompts, not HTTP requests: a request with a prompt array of N (or
 *   n choices) counts N. They are exact within a window over all bridges. Windows are fixed, so up to
 *   2 × rpm can pass within one minute that straddles a boundary (rpm at the end of one window,
 *   rpm at the start of the next). Windows follow each bridge's clock: keep clocks in sync (NTP).
 *   Every admitted request counts, also one the cluster then refuses (busy); refused ones don't.
 * - Tokens per minute are counted when a request ends (its real prompt + completion tokens; for a
 *   request cut short, as when its client disconnects, the tokens delivered until then), in
 *   the window current at that moment. A request is refused when its window's tokens are spent
 *   or its estimate would overspend them, but requests already running are not counted yet: a
 *   burst of concurrent requests can overshoot tpm by what they generate.
 * - Each limited request costs one KV round trip at admission when this bridge made the window's
 *   last update (it remembers the revision), three when another bridge did (a conflict, a read, a
 *   retry), and for keys with tpm the same again at release. Keys without rpm and tpm cost none.
 * - max_concurrency is per bridge: N bridges admit up to N × max_concurrency at once.
 *
 * When the bucket cannot be reached the limiter fails open by default: limits protect fairness
 * between keys, not the cluster (bounded queues answer `busy` whatever the limiter says, and
 * max_concurrency still caps each key per bridge), so a JetStream hiccup should not turn into an
 * outage of the whole API. `failMode: 'closed'` refuses instead (503), for deployments where the
 * limits bound spending. Either way the store is not asked again for `storeRetryMs`, so an outage
 * costs one timeout per period, not one per request, and is logged once, not per request.
 * Tokens of requests that end while the store is unreachable are not counted.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { JetStreamApiCodes, JetStreamApiError, jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { InternalError, RateLimitedError, StartupError, UnavailableError } from '../errors/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { KeyAuthenticator } from './auth.ts';
import {
  RATE_WINDOW_MS,
  compileRateLimitOptions,
  type CompiledRateLimitOptions,
  type RateLimitOptions,
} from './rate-limit-options.ts';
import type { PolicySource } from './options.ts';
import type { Admission, Authenticator, Caller, RateLimiter } from './policy.ts';

/** Retry-After for a key at its max_concurrency: a short request typically ends within a second. */
export const CONCURRENCY_RETRY_AFTER_MS = 1_000;
/** Compare-and-set attempts before giving up (only under extreme contention on one key). */
const MAX_CAS_ATTEMPTS = 64;

/** One window's counters, as stored (JSON). */
interface WindowCounts {
  requests: number;
  tokens: number;
}

/** The last revision of a window this bridge saw, and its counters then. */
interface KnownWindow {
  revision: number;
  counts: WindowCounts;
}

const EMPTY: WindowCounts = { requests: 0, tokens: 0 };

function decodeCounts(key: string, data: Uint8Array): WindowCounts {
  const value: unknown = JSON.parse(new TextDecoder().decode(data));
  const o = value as Partial<WindowCounts> | null;
  if (
    o === null ||
    typeof o !== 'object' ||
    !Number.isSafeInteger(o.requests) ||
    !Number.isSafeInteger(o.tokens)
  ) {
    throw new InternalError(`rate limit window ${key} holds something else than counters`);
  }
  return { requests: o.requests ?? 0, tokens: o.tokens ?? 0 };
}

/** True when a conditional put lost the race: someone else updated the window first. */
function isConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/** Counters for the metrics endpoint. */
export interface RateLimitStats {
  admitted: number;
  /** Refused with `rate_limited` (rpm, tpm or max_concurrency). */
  limited: number;
  /** Admitted without the shared limits because the store was unreachable (fail open). */
  failedOpen: number;
  /** Refused because the store was unreachable (fail closed). */
  failedClosed: number;
  /** KV requests that failed (timeouts, JetStream errors). */
  storeErrors: number;
  /** Conditional writes that lost a race to another writer and were retried. */
  conflicts: number;
}

/** The bridge's {@link RateLimiter}. */
export class SharedRateLimiter implements RateLimiter {
  readonly stats: RateLimitStats = {
    admitted: 0,
    limited: 0,
    failedOpen: 0,
    failedClosed: 0,
    storeErrors: 0,
    conflicts: 0,
  };
  readonly #kv: KV | undefined;
  readonly #opts: CompiledRateLimitOptions;
  readonly #log: Pick<Logger, 'warn' | 'info'>;
  readonly #now: () => number;
  readonly #active = new Map<string, number>();
  readonly #pending = new Set<Promise<void>>();
  #known = new Map<string, KnownWindow>();
  #knownWindow = -1;
  #storeDownUntil = 0;
  #storeDown = false;

  /**
   * `kv` is undefined when no key has rpm or tpm (then no JetStream is needed); `now` is
   * replaceable so tests can stand at a window boundary.
   */
  constructor(
    kv: KV | undefined,
    opts: CompiledRateLimitOptions,
    log: Pick<Logger, 'warn' | 'info'>,
    now: () => number = Date.now,
  ) {
    this.#kv = kv;
    this.#opts = opts;
    this.#log = log;
    this.#now = now;
  }

  /** Requests of `keyId` running on this bridge now. */
  activeRequests(keyId: string): number {
    return this.#active.get(keyId) ?? 0;
  }

  async admit(caller: Caller, estimatedTokens: number, requests = 1): Promise<Admission> {
    this.#takeSlot(caller);
    try {
      if (caller.rpm !== undefined || caller.tpm !== undefined) {
        const estimate = Number.isFinite(estimatedTokens) ? Math.max(0, Math.ceil(estimatedTokens)) : 0;
        const count = Number.isSafeInteger(requests) && requests > 1 ? requests : 1;
        await this.#countRequest(caller, estimate, count);
      }
    } catch (err) {
      this.#freeSlot(caller.keyId);
      if (err instanceof RateLimitedError) this.stats.limited++;
      throw err;
    }
    this.stats.admitted++;
    let released = false;
    return {
      release: (tokens: number) => {
        if (released) return;
        released = true;
        this.#freeSlot(caller.keyId);
        if (caller.tpm !== undefined && tokens > 0) this.#countTokens(caller.keyId, Math.ceil(tokens));
      },
    };
  }

  /** Waits for token counts still being written; the bridge calls it before closing NATS. */
  async close(): Promise<void> {
    await Promise.all([...this.#pending]);
  }

  #takeSlot(caller: Caller): void {
    const active = this.#active.get(caller.keyId) ?? 0;
    if (caller.maxConcurrency !== undefined && active >= caller.maxConcurrency) {
      this.stats.limited++;
      throw new RateLimitedError(
        `key ${caller.keyId} already has ${caller.maxConcurrency} requests in progress on this bridge (max_concurrency)`,
        CONCURRENCY_RETRY_AFTER_MS,
      );
    }
    this.#active.set(caller.keyId, active + 1);
  }

  #freeSlot(keyId: string): void {
    const active = (this.#active.get(keyId) ?? 1) - 1;
    if (active <= 0) this.#active.delete(keyId);
    else this.#active.set(keyId, active);
  }

  async #countRequest(caller: Caller, estimate: number, requests: number): Promise<void> {
    const kv = this.#kv;
    if (kv === undefined) {
      throw new InternalError(`key ${caller.keyId} has rpm or tpm but the rate limiter has no KV bucket`);
    }
    if (this.#now() < this.#storeDownUntil) return this.#decideWithoutStore();
    const window = Math.floor(this.#now() / RATE_WINDOW_MS);
    try {
      await this.#update(kv, `${caller.keyId}.${window}`, (counts) => {
        this.#check(caller, counts, estimate, requests, window);
        return { requests: counts.requests + requests, tokens: counts.tokens };
      });
    } catch (err) {
      if (err instanceof RateLimitedError) throw err;
      this.#storeFailed(err);
      return this.#decideWithoutStore();
    }
    this.#storeUp();
  }

  #countTokens(keyId: string, tokens: number): void {
    const kv = this.#kv;
    if (kv === undefined || this.#now() < this.#storeDownUntil) return;
    const key = `${keyId}.${Math.floor(this.#now() / RATE_WINDOW_MS)}`;
    const write = this.#update(kv, key, (c) => ({ requests: c.requests, tokens: c.tokens + tokens })).then(
      () => this.#storeUp(),
      (err: unknown) => this.#storeFailed(err),
    );
    this.#pending.add(write);
    void write.finally(() => this.#pending.delete(write));
  }

  /** Throws RateLimitedError when `counts` leave no room for `requests` more of `estimate` tokens. */
  #check(caller: Caller, counts: WindowCounts, estimate: number, requests: number, window: number): void {
    const retryAfterMs = Math.max(1, (window + 1) * RATE_WINDOW_MS - this.#now());
    const retryS = Math.ceil(retryAfterMs / 1000);
    const rpm = caller.rpm;
    if (rpm !== undefined && counts.requests >= rpm) {
      throw new RateLimitedError(
        `rate limit of key ${caller.keyId}: ${rpm} requests per minute used; retry in ${retryS} s`,
        retryAfterMs,
      );
    }
    // As with tokens: more prompts than the whole budget may still run alone in an empty window.
    if (rpm !== undefined && counts.requests > 0 && counts.requests + requests > rpm) {
      throw new RateLimitedError(
        `rate limit of key ${caller.keyId}: ${counts.requests} of ${rpm} requests per minute used, ` +
          `this request has ${requests} prompts; retry in ${retryS} s`,
        retryAfterMs,
      );
    }
    // A request larger than the whole budget may still run alone in an empty window; otherwise
    // it could never run at all.
    const tpm = caller.tpm;
    if (
      tpm !== undefined &&
      (counts.tokens >= tpm || (counts.tokens > 0 && counts.tokens + estimate > tpm))
    ) {
      throw new RateLimitedError(
        `rate limit of key ${caller.keyId}: ${counts.tokens} of ${tpm} tokens per minute used, ` +
          `this request may take ${estimate}; retry in ${retryS} s`,
        retryAfterMs,
      );
    }
  }

  /**
   * Compare-and-set loop: applies `next` to the latest counters and writes them only if nobody
   * wrote in between, else reads again and retries. `next` may throw to refuse.
   */
  async #update(kv: KV, key: string, next: (counts: WindowCounts) => WindowCounts): Promise<void> {
    let known = this.#remembered(key);
    for (let attempt = 1; ; attempt++) {
      const counts = next(known?.counts ?? EMPTY);
      try {
        const data = JSON.stringify(counts);
        // previousSeq 0 = "create": the window must not exist yet.
        const revision = await kv.put(key, data, { previousSeq: known?.revision ?? 0 });
        this.#remember(key, { revision, counts });
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
        this.stats.conflicts++;
        if (attempt >= MAX_CAS_ATTEMPTS) {
          throw new InternalError(`rate limit window ${key}: ${attempt} conflicting updates in a row`, {
            cause: err,
          });
        }
      }
      known = await this.#read(kv, key);
    }
  }

  async #read(kv: KV, key: string): Promise<KnownWindow | undefined> {
    const entry = await kv.get(key);
    if (entry === null) return undefined;
    // A delete marker still has a revision that the next conditional put must name.
    const counts = entry.operation === 'PUT' ? decodeCounts(key, entry.value) : EMPTY;
    return { revision: entry.revision, counts };
  }

  #remembered(key: string): KnownWindow | undefined {
    return this.#known.get(key);
  }

  #remember(key: string, known: KnownWindow): void {
    const window = Math.floor(this.#now() / RATE_WINDOW_MS);
    if (window !== this.#knownWindow) {
      // Keep only the current window's revisions: memory stays bounded by the active keys.
      this.#known = new Map();
      this.#knownWindow = window;
    }
    this.#known.set(key, known);
  }

  #decideWithoutStore(): void {
    if (this.#opts.failMode === 'open') {
      this.stats.failedOpen++;
      return;
    }
    this.stats.failedClosed++;
    throw new UnavailableError(
      'rate limits cannot be checked right now (their shared store is unreachable); retry shortly',
    );
  }

  #storeFailed(err: unknown): void {
    this.stats.storeErrors++;
    this.#storeDownUntil = this.#now() + this.#opts.storeRetryMs;
    this.#known = new Map(); // revisions may be stale after an outage
    if (this.#storeDown) return;
    this.#storeDown = true;
    this.#log.warn(
      { err, bucket: this.#opts.bucket, failMode: this.#opts.failMode },
      this.#opts.failMode === 'open'
        ? 'rate limit store unreachable: admitting requests without rpm/tpm limits until it is back'
        : 'rate limit store unreachable: refusing limited requests until it is back',
    );
  }

  #storeUp(): void {
    if (!this.#storeDown) return;
    this.#storeDown = false;
    this.#log.info({ bucket: this.#opts.bucket }, 'rate limit store reachable again');
  }
}

/**
 * Opens (or creates) the limits bucket when some key has rpm or tpm, and returns the limiter.
 * Fails at startup with a message saying what to fix when JetStream is off: limits that exist
 * in the keys file but cannot be enforced are a configuration error, not a runtime surprise.
 */
export async function openRateLimiter(
  nc: NatsConnection,
  needsStore: boolean,
  opts: CompiledRateLimitOptions,
  log: Pick<Logger, 'warn' | 'info'>,
): Promise<SharedRateLimiter> {
  if (!needsStore) return new SharedRateLimiter(undefined, opts, log);
  const kvm = new Kvm(jetstream(nc, { timeout: opts.kvTimeoutMs }));
  let kv: KV;
  try {
    kv = await kvm.create(opts.bucket, { history: 1, ttl: opts.ttlMs });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new StartupError(
      'dependency',
      `per-key rpm/tpm limits need the NATS KV bucket ${opts.bucket}, which cannot be opened: ${reason}. ` +
        'Enable JetStream on nats-server (-js, or a jetstream block in its config), or remove rpm and tpm from the keys',
      { cause: err },
    );
  }
  const ttl = (await kv.status()).ttl;
  if (ttl !== opts.ttlMs) {
    log.warn(
      { bucket: opts.bucket, bucketTtlMs: ttl, wantedTtlMs: opts.ttlMs },
      'rate limit bucket already exists with another TTL; using it as it is',
    );
  }
  return new SharedRateLimiter(kv, opts, log);
}

/**
 * The limiter for the bridge's `policies.limiter`: undefined (no limits) without keys, else a
 * factory the bridge calls once connected. Options are checked here, before anything starts.
 */
export function rateLimiterSource(
  auth: Authenticator,
  opts: RateLimitOptions = {},
): PolicySource<RateLimiter> | undefined {
  const compiled = compileRateLimitOptions(opts);
  if (!(auth instanceof KeyAuthenticator)) return undefined;
  const needsStore = auth.sharedLimits;
  return ({ nc, log }) => openRateLimiter(nc, needsStore, compiled, log);
}
