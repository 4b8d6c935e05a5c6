/**
 * The opt-in response cache: whole generations of deterministic requests, kept in a NATS KV
 * bucket shared by every bridge and expired by the bucket's TTL (per-key TTL is ignored by
 * nats-server 2.9).
 *
 * Only a request whose output is a pure function of its inputs is cached: greedy (temperature 0)
 * or sampled with a fixed seed (sampling is a pure function of seed, position and logits; see the
 * protocol's exact resume). The key hashes every input that can change the output, the model
 * version included, so a hit never crosses versions. A cache must never fail a request: every
 * store error is logged and answered as a miss, and after one the store is left alone for a
 * moment so that an outage costs one timeout per period, not one per request.
 */
import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import { PARAM_WIRE_NAMES } from '../cluster/messages/params.ts';
import { checkMs } from '../config/checks.ts';
import { StartupError } from '../errors/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { PolicySource } from './options.ts';
import type { CachedGeneration, ResponseCache } from './policy.ts';

/** The KV bucket of cached generations. */
export const DEFAULT_CACHE_BUCKET = 'sy_response_cache';
/** How long a generation stays cached (bucket TTL). */
export const DEFAULT_CACHE_TTL_MS = 10 * 60_000;
/** Largest cached value; larger generations are not cached. Below NATS' default 1 MiB payload. */
export const DEFAULT_CACHE_MAX_VALUE_BYTES = 512 * 1024;
/** Total size of the bucket; the oldest entries go first when full. */
export const DEFAULT_CACHE_MAX_BYTES = 256 * 1024 * 1024;
/** A cache lookup slower than this is a miss: the cache exists to save time. */
export const DEFAULT_CACHE_KV_TIMEOUT_MS = 500;
/** After a store error, skip the cache for this long. */
export const DEFAULT_CACHE_STORE_RETRY_MS = 5_000;
/** Room left under the server's max payload for the message headers. */
const HEADER_ALLOWANCE_BYTES = 4 * 1024;
/** Part of every key: a change of what is stored, or how keys are made, starts a fresh cache. */
const KEY_FORMAT = 'sy-response-cache-v2';
const BUCKET_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Response cache settings. The cache is off unless `enabled`. */
export interface ResponseCacheOptions {
  /** Cache deterministic requests. @default false */
  enabled?: boolean;
  /** KV bucket; every bridge sharing the cache uses the same one. @default DEFAULT_CACHE_BUCKET ('sy_response_cache') */
  bucket?: string;
  /** Bucket TTL in ms. Applies when this bridge creates the bucket. @default DEFAULT_CACHE_TTL_MS (600000) */
  ttlMs?: number;
  /** Largest value in bytes, capped by the server's max payload. @default DEFAULT_CACHE_MAX_VALUE_BYTES (524288) */
  maxValueBytes?: number;
  /** Bucket size in bytes. @default DEFAULT_CACHE_MAX_BYTES (268435456) */
  maxBytes?: number;
  /** Timeout of one KV request in ms. @default DEFAULT_CACHE_KV_TIMEOUT_MS (500) */
  kvTimeoutMs?: number;
  /** After a store error, how long to skip the cache, in ms. @default DEFAULT_CACHE_STORE_RETRY_MS (5000) */
  storeRetryMs?: number;
}

/** {@link ResponseCacheOptions} checked, with defaults filled in. */
export interface CompiledResponseCacheOptions {
  enabled: boolean;
  bucket: string;
  ttlMs: number;
  maxValueBytes: number;
  maxBytes: number;
  kvTimeoutMs: number;
  storeRetryMs: number;
}

/** Fills defaults and rejects bad values with a message naming the option. */
export function compileResponseCacheOptions(opts: ResponseCacheOptions = {}): CompiledResponseCacheOptions {
  const bucket = opts.bucket ?? DEFAULT_CACHE_BUCKET;
  if (!BUCKET_PATTERN.test(bucket)) {
    throw new StartupError('config', `cacheBucket must match [A-Za-z0-9_-]{1,64}, got '${bucket}'`);
  }
  return {
    enabled: opts.enabled ?? false,
    bucket,
    ttlMs: checkMs('cacheTtlMs', opts.ttlMs, DEFAULT_CACHE_TTL_MS),
    maxValueBytes: checkMs('cacheMaxValueBytes', opts.maxValueBytes, DEFAULT_CACHE_MAX_VALUE_BYTES),
    maxBytes: checkMs('cacheMaxBytes', opts.maxBytes, DEFAULT_CACHE_MAX_BYTES),
    kvTimeoutMs: checkMs('cacheKvTimeoutMs', opts.kvTimeoutMs, DEFAULT_CACHE_KV_TIMEOUT_MS),
    storeRetryMs: checkMs('cacheStoreRetryMs', opts.storeRetryMs, DEFAULT_CACHE_STORE_RETRY_MS, 0),
  };
}

/** JSON with object keys sorted at every level: equal inputs give equal bytes. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/**
 * The cache key of `req` served by `modelVersion` for `tenant`, or undefined when its output is
 * not determined by its inputs (sampled without a seed). Every generation parameter goes into the
 * key by its wire name, so a parameter added later is covered without touching this function.
 * The tenant is part of the key: entries are never shared between API keys (a hit, or its
 * latency, would tell one key what another asked). Without keys every caller is one tenant.
 */
export function responseCacheKey(
  req: GenerateRequest,
  modelVersion: string,
  tenant: string,
): string | undefined {
  if (req.temperature !== 0 && req.seed === undefined) return undefined;
  const inputs: Record<string, unknown> = {
    format: KEY_FORMAT,
    tenant,
    model: req.model,
    version: modelVersion,
  };
  for (const [field, wireName] of Object.entries(PARAM_WIRE_NAMES)) {
    const value = req[field as keyof typeof PARAM_WIRE_NAMES];
    if (value !== undefined) inputs[wireName] = value;
  }
  return createHash('sha256').update(canonicalJson(inputs)).digest('hex');
}

/** Counters for the metrics endpoint. */
export interface ResponseCacheStats {
  hits: number;
  misses: number;
  /** Generations written. */
  stores: number;
  /** Generations not written because they are larger than the largest value. */
  skipped: number;
  /** Store errors (answered as misses or dropped writes). */
  errors: number;
}

function isCachedGeneration(v: unknown): v is CachedGeneration {
  const o = v as Partial<CachedGeneration> | null;
  return (
    o !== null &&
    typeof o === 'object' &&
    typeof o.text === 'string' &&
    Array.isArray(o.tokenIds) &&
    o.tokenIds.every((t) => Number.isSafeInteger(t)) &&
    (o.finishReason === 'stop' || o.finishReason === 'length') &&
    Number.isSafeInteger(o.promptTokens) &&
    Number.isSafeInteger(o.completionTokens)
  );
}

/** The cache over a NATS KV bucket. Never throws from `get` or `put`. */
export class KvResponseCache implements ResponseCache {
  readonly enabled = true;
  readonly stats: ResponseCacheStats = { hits: 0, misses: 0, stores: 0, skipped: 0, errors: 0 };
  /** Largest value written, in bytes. */
  readonly maxValueBytes: number;
  readonly #kv: KV;
  readonly #opts: CompiledResponseCacheOptions;
  readonly #log: Pick<Logger, 'warn'>;
  readonly #now: () => number;
  #storeDownUntil = 0;

  constructor(
    kv: KV,
    opts: CompiledResponseCacheOptions,
    maxValueBytes: number,
    log: Pick<Logger, 'warn'>,
    now: () => number = Date.now,
  ) {
    this.#kv = kv;
    this.#opts = opts;
    this.maxValueBytes = maxValueBytes;
    this.#log = log;
    this.#now = now;
  }

  keyOf(req: GenerateRequest, modelVersion: string, tenant: string): string | undefined {
    return responseCacheKey(req, modelVersion, tenant);
  }

  async get(key: string): Promise<CachedGeneration | undefined> {
    if (this.#now() < this.#storeDownUntil) {
      this.stats.misses++;
      return undefined;
    }
    try {
      const entry = await this.#kv.get(key);
      if (entry !== null && entry.operation === 'PUT') {
        const value: unknown = entry.json();
        if (isCachedGeneration(value)) {
          this.stats.hits++;
          return value;
        }
        this.#failed(new Error(`entry ${key} is not a cached generation`), 'read');
      }
    } catch (err) {
      this.#failed(err, 'read');
    }
    this.stats.misses++;
    return undefined;
  }

  async put(key: string, value: CachedGeneration): Promise<void> {
    if (this.#now() < this.#storeDownUntil) return;
    const data = new TextEncoder().encode(
      JSON.stringify({
        text: value.text,
        tokenIds: value.tokenIds,
        finishReason: value.finishReason,
        promptTokens: value.promptTokens,
        completionTokens: value.completionTokens,
      } satisfies CachedGeneration),
    );
    if (data.byteLength > this.maxValueBytes) {
      this.stats.skipped++;
      return;
    }
    try {
      await this.#kv.put(key, data);
      this.stats.stores++;
    } catch (err) {
      this.#failed(err, 'write');
    }
  }

  #failed(err: unknown, what: 'read' | 'write'): void {
    this.stats.errors++;
    this.#storeDownUntil = this.#now() + this.#opts.storeRetryMs;
    this.#log.warn(
      { err, bucket: this.#opts.bucket },
      `response cache ${what} failed; serving without the cache for ${this.#opts.storeRetryMs} ms`,
    );
  }
}

/**
 * Opens the cache's bucket (creating it with its TTL). Fails at startup when JetStream is off,
 * since an operator who turned the cache on wants to know it is not working.
 */
export async function openResponseCache(
  nc: NatsConnection,
  opts: CompiledResponseCacheOptions,
  log: Pick<Logger, 'warn'>,
): Promise<KvResponseCache> {
  const serverMax = nc.info?.max_payload;
  const maxValueBytes =
    serverMax === undefined
      ? opts.maxValueBytes
      : Math.min(opts.maxValueBytes, serverMax - HEADER_ALLOWANCE_BYTES);
  const kvm = new Kvm(jetstream(nc, { timeout: opts.kvTimeoutMs }));
  try {
    const kv = await kvm.create(opts.bucket, {
      history: 1,
      ttl: opts.ttlMs,
      maxValueSize: maxValueBytes,
      max_bytes: opts.maxBytes,
    });
    const status = await kv.status();
    if (status.ttl !== opts.ttlMs) {
      log.warn(
        { bucket: opts.bucket, bucketTtlMs: status.ttl, wantedTtlMs: opts.ttlMs },
        'response cache bucket already exists with another TTL; using it as it is',
      );
    }
    // A bucket made by another bridge may allow smaller values than this one would.
    const bucketMax = status.maxValueSize > 0 ? status.maxValueSize : maxValueBytes;
    return new KvResponseCache(kv, opts, Math.min(maxValueBytes, bucketMax), log);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new StartupError(
      'dependency',
      `the response cache needs the NATS KV bucket ${opts.bucket}, which cannot be opened: ${reason}. ` +
        'Enable JetStream on nats-server (-js, or a jetstream block in its config), or turn the cache off',
      { cause: err },
    );
  }
}

/**
 * The cache for the bridge's `policies.cache`: undefined (cache off) unless enabled, else a
 * factory the bridge calls once connected. Options are checked here, before anything starts.
 */
export function responseCacheSource(
  opts: ResponseCacheOptions = {},
): PolicySource<ResponseCache> | undefined {
  const compiled = compileResponseCacheOptions(opts);
  if (!compiled.enabled) return undefined;
  return ({ nc, log }) => openResponseCache(nc, compiled, log);
}
