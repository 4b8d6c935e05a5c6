/**
 * Per-key rate limits on a real nats-server with JetStream. Two limiters on one bucket stand for
 * two bridges: together they admit exactly rpm requests in a window, however their requests
 * interleave; tokens count after release; max_concurrency is per bridge; an unreachable store
 * fails open (or closed, when asked) without a timeout per request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { createAuthenticator } from '../../src/bridge/auth.ts';
import type { Caller } from '../../src/bridge/policy.ts';
import {
  CONCURRENCY_RETRY_AFTER_MS,
  SharedRateLimiter,
  openRateLimiter,
  rateLimiterSource,
} from '../../src/bridge/rate-limit.ts';
import {
  RATE_WINDOW_MS,
  compileRateLimitOptions,
  type RateLimitOptions,
} from '../../src/bridge/rate-limit-options.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { RateLimitedError, StartupError, UnavailableError } from '../../src/errors/errors.ts';
import { NatsServer } from '../helpers/nats-server.ts';

/** Some window's start, 15 s in: 45 s to the next window. */
const WINDOW_START = 28_000_000 * RATE_WINDOW_MS;
const NOW = WINDOW_START + 15_000;

interface Clock {
  now: number;
}

function quietLog(warnings: string[] = []): { warn: (o: unknown, m?: string) => void; info: () => void } {
  return { warn: (_o: unknown, m?: string) => void warnings.push(m ?? ''), info: () => undefined };
}

async function rejectsLimited(p: Promise<unknown>, retryAfterMs: number, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof RateLimitedError, String(err));
    assert.equal(err.code, 'rate_limited');
    assert.equal(err.retryAfterMs, retryAfterMs);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('shared rate limits', () => {
  let server: NatsServer;
  let nc1: NatsConnection;
  let nc2: NatsConnection;
  let kv1: KV;
  let kv2: KV;
  const clock: Clock = { now: NOW };
  const opts = compileRateLimitOptions({ bucket: 'sy_rl_test' });
  const bridge = (kv: KV): SharedRateLimiter => new SharedRateLimiter(kv, opts, quietLog(), () => clock.now);

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    [nc1, nc2] = await Promise.all([
      connectNats({ servers: server.url }),
      connectNats({ servers: server.url }),
    ]);
    kv1 = await new Kvm(nc1).create(opts.bucket, { history: 1, ttl: opts.ttlMs });
    kv2 = await new Kvm(nc2).open(opts.bucket);
  });

  after(async () => {
    await nc1?.close();
    await nc2?.close();
    await server?.stop();
  });

  it('opens the bucket with a bucket TTL and one value per window', async () => {
    const nc = await connectNats({ servers: server.url });
    try {
      const limiter = await openRateLimiter(
        nc,
        true,
        compileRateLimitOptions({ bucket: 'sy_rl_open' }),
        quietLog(),
      );
      assert.ok(limiter instanceof SharedRateLimiter);
      const status = await (await new Kvm(nc).open('sy_rl_open')).status();
      assert.equal(status.ttl, 2 * RATE_WINDOW_MS);
      assert.equal(status.history, 1);
    } finally {
      await nc.close();
    }
  });

  it('two bridges together admit exactly rpm requests in a window', async () => {
    clock.now = NOW;
    const a = bridge(kv1);
    const b = bridge(kv2);
    const caller: Caller = { keyId: 'rpm-shared', rpm: 10 };
    const attempts = Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? a : b).admit(caller, 1));
    const results = await Promise.allSettled(attempts);
    const admitted = results.filter((r) => r.status === 'fulfilled').length;
    assert.equal(admitted, 10);
    for (const r of results) {
      if (r.status === 'rejected') {
        assert.ok(r.reason instanceof RateLimitedError, String(r.reason));
        assert.equal(r.reason.retryAfterMs, 45_000);
      }
    }
    await rejectsLimited(b.admit(caller, 1), 45_000, /10 requests per minute used; retry in 45 s/);
    const stored = await kv1.get(`rpm-shared.${WINDOW_START / RATE_WINDOW_MS}`);
    assert.deepEqual(stored?.json(), { requests: 10, tokens: 0 });
    assert.equal(a.stats.admitted + b.stats.admitted, 10);
    assert.equal(a.stats.limited + b.stats.limited, 7);
    assert.ok(a.stats.conflicts + b.stats.conflicts > 0, 'the bridges raced for the window (CAS exercised)');
    // The next window starts afresh; retryAfterMs shrinks as the window ends.
    clock.now = WINDOW_START + RATE_WINDOW_MS - 250;
    await rejectsLimited(a.admit(caller, 1), 250, /retry in 1 s/);
    clock.now = WINDOW_START + RATE_WINDOW_MS;
    await a.admit(caller, 1);
    await b.admit(caller, 1);
  });

  it('counts every prompt of a request against rpm, and refuses what would overspend it', async () => {
    clock.now = NOW;
    const a = bridge(kv1);
    const caller: Caller = { keyId: 'rpm-prompts', rpm: 5 };
    (await a.admit(caller, 1, 3)).release(0);
    await rejectsLimited(
      a.admit(caller, 1, 3),
      45_000,
      /3 of 5 requests per minute used, this request has 3 prompts/,
    );
    (await a.admit(caller, 1, 2)).release(0);
    await rejectsLimited(a.admit(caller, 1), 45_000, /5 requests per minute used/);
    const stored = await kv1.get(`rpm-prompts.${WINDOW_START / RATE_WINDOW_MS}`);
    assert.deepEqual(stored?.json(), { requests: 5, tokens: 0 });
  });

  it('counts tokens after release, over both bridges', async () => {
    clock.now = NOW;
    const a = bridge(kv1);
    const b = bridge(kv2);
    const caller: Caller = { keyId: 'tpm-shared', tpm: 100 };
    (await a.admit(caller, 10)).release(60);
    await a.close();
    (await b.admit(caller, 10)).release(30);
    await b.close();
    // 90 of 100 used: 20 more would overspend, 10 fits exactly.
    await rejectsLimited(
      a.admit(caller, 20),
      45_000,
      /90 of 100 tokens per minute used, this request may take 20/,
    );
    const last = await a.admit(caller, 10);
    last.release(10);
    last.release(10); // a second release counts nothing
    await a.close();
    await rejectsLimited(b.admit(caller, 0), 45_000, /100 of 100 tokens/);
    const stored = await kv2.get(`tpm-shared.${WINDOW_START / RATE_WINDOW_MS}`);
    assert.deepEqual(stored?.json(), { requests: 3, tokens: 100 });
  });

  it('admits a request larger than the whole token budget into an empty window only', async () => {
    clock.now = NOW;
    const a = bridge(kv1);
    const caller: Caller = { keyId: 'tpm-big', tpm: 100 };
    (await a.admit(caller, 500)).release(5);
    await a.close();
    await rejectsLimited(a.admit(caller, 500), 45_000, /5 of 100 tokens/);
  });

  it('caps concurrency per bridge instance, not across bridges', async () => {
    const a = bridge(kv1);
    const b = bridge(kv2);
    const caller: Caller = { keyId: 'conc', maxConcurrency: 2 };
    const first = await a.admit(caller, 1);
    await a.admit(caller, 1);
    await rejectsLimited(
      a.admit(caller, 1),
      CONCURRENCY_RETRY_AFTER_MS,
      /2 requests in progress on this bridge/,
    );
    await b.admit(caller, 1); // another bridge has its own slots
    first.release(0);
    first.release(0); // releasing twice frees one slot, not two
    assert.equal(a.activeRequests('conc'), 1);
    await a.admit(caller, 1);
    await rejectsLimited(a.admit(caller, 1), CONCURRENCY_RETRY_AFTER_MS, /max_concurrency/);
  });

  it('frees the concurrency slot of a request refused by rpm', async () => {
    clock.now = NOW;
    const a = bridge(kv1);
    const caller: Caller = { keyId: 'conc-rpm', rpm: 1, maxConcurrency: 1 };
    (await a.admit(caller, 1)).release(0);
    await rejectsLimited(a.admit(caller, 1), 45_000, /1 requests per minute/);
    assert.equal(a.activeRequests('conc-rpm'), 0);
  });

  describe('when the store is unreachable', () => {
    let gone: KV;
    before(async () => {
      gone = await new Kvm(nc1).create('sy_rl_gone', { history: 1, ttl: opts.ttlMs });
      await (await jetstreamManager(nc1)).streams.delete('KV_sy_rl_gone');
    });

    const limiter = (extra: RateLimitOptions, warnings: string[]): SharedRateLimiter =>
      new SharedRateLimiter(
        gone,
        compileRateLimitOptions({ bucket: 'sy_rl_gone', storeRetryMs: 60_000, ...extra }),
        quietLog(warnings),
        () => clock.now,
      );

    it('fails open by default, warns once and stops asking the store for a while', async () => {
      clock.now = NOW;
      const warnings: string[] = [];
      const l = limiter({}, warnings);
      const caller: Caller = { keyId: 'down', rpm: 1, tpm: 1 };
      (await l.admit(caller, 1)).release(5);
      (await l.admit(caller, 1)).release(5);
      await l.close();
      assert.equal(l.stats.failedOpen, 2);
      assert.equal(l.stats.storeErrors, 1, 'the second request did not wait for the store');
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /admitting requests without rpm\/tpm limits/);
    });

    it('fails closed when asked, with unavailable (503), not rate_limited', async () => {
      clock.now = NOW;
      const l = limiter({ failMode: 'closed' }, []);
      const caller: Caller = { keyId: 'down', rpm: 100, maxConcurrency: 1 };
      await assert.rejects(l.admit(caller, 1), (err: unknown) => {
        assert.ok(err instanceof UnavailableError, String(err));
        assert.match(err.message, /rate limits cannot be checked/);
        return true;
      });
      assert.equal(l.activeRequests('down'), 0, 'the refused request freed its slot');
      assert.equal(l.stats.failedClosed, 1);
    });
  });

  it('needs no JetStream when no key has rpm or tpm, and says how to fix it when one does', async () => {
    const plain = await NatsServer.start();
    const nc = await connectNats({ servers: plain.url });
    try {
      const auth = createAuthenticator({
        keys: [{ id: 'k', key: 'sy-concurrency-only-key-0123456789', max_concurrency: 1 }],
      });
      const source = rateLimiterSource(auth);
      assert.equal(typeof source, 'function');
      const noStore = await openRateLimiter(nc, false, opts, quietLog());
      await noStore.admit({ keyId: 'k', maxConcurrency: 1 }, 1);
      await rejectsLimited(
        noStore.admit({ keyId: 'k', maxConcurrency: 1 }, 1),
        CONCURRENCY_RETRY_AFTER_MS,
        /k/,
      );
      await assert.rejects(openRateLimiter(nc, true, opts, quietLog()), (err: unknown) => {
        assert.ok(err instanceof StartupError, String(err));
        assert.match(err.message, /need the NATS KV bucket sy_rl_test.*Enable JetStream/);
        return true;
      });
      assert.equal(rateLimiterSource(createAuthenticator({})), undefined, 'no keys: no limiter');
    } finally {
      await nc.close();
      await plain.stop();
    }
  });

  it('rejects bad options with a message naming the option', () => {
    assert.throws(
      () => compileRateLimitOptions({ ttlMs: 30_000 }),
      /rateLimitTtlMs must be an integer >= 60001/,
    );
    assert.throws(
      () => compileRateLimitOptions({ failMode: 'sometimes' as 'open' }),
      /rateLimitFailMode must be open or closed/,
    );
    assert.throws(() => compileRateLimitOptions({ bucket: 'a.b' }), /rateLimitBucket must match/);
  });
});
