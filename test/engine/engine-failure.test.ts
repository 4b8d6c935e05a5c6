/**
 * An engine whose worker dies: `failed` resolves, requests in flight end with engine_failed,
 * `stop()` resolves at once (a replica then exits and is restarted instead of hanging).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EngineFailedError, InvalidRequestError, UnavailableError } from '../../src/errors/errors.ts';
import { Engine } from '../../src/engine/engine.ts';
import type { FaultSettings } from '../../src/engine/worker-protocol.ts';
import { TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';

/** Rejects if `promise` takes longer than `ms`: a hang detector, not a timing assertion. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const isEngineFailed = (err: unknown): boolean =>
  err instanceof EngineFailedError && err.code === 'engine_failed';

describe('engine worker death', () => {
  for (const crash of ['worker', 'tokenizer'] as const) {
    it(`a ${crash} that dies fails the engine, its requests end with engine_failed, stop() resolves`, async () => {
      const engine = await Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS, allowFaultInjection: true });
      const running = engine.stream({
        prompt: 'The yard master',
        maxTokens: 400,
        temperature: 0,
        ignoreEos: true,
      });
      await running.settled; // admitted and running in the worker
      engine.injectFault({ stepDelayMs: 20 }); // keeps it running until the crash
      const tokenizing = engine.stream({ prompt: 'A second request', maxTokens: 4, temperature: 0 });
      engine.injectFault({ crash });
      const err = await within(engine.failed, 10_000, 'engine.failed');
      assert.match(err.message, /injected fault|exited/);
      await assert.rejects(running.end, isEngineFailed);
      await assert.rejects(tokenizing.end, isEngineFailed);
      await assert.rejects(async () => {
        for await (const _ of running) void _;
      }, isEngineFailed);
      assert.throws(() => engine.stream({ prompt: 'x' }), UnavailableError);
      await within(engine.stop(), 2_000, 'stop() of a failed engine');
      await engine.stop(); // runs once, however often called
    });
  }

  it('refuses the crash fault unless fault injection is allowed', async () => {
    const engine = await Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS });
    try {
      for (const crash of ['worker', 'tokenizer'] satisfies FaultSettings['crash'][]) {
        assert.throws(() => engine.injectFault({ crash }), InvalidRequestError);
      }
      const out = await engine.generate({ prompt: 'still serving', maxTokens: 3, temperature: 0 });
      assert.equal(out.usage.completionTokens, 3);
    } finally {
      await engine.stop();
    }
  });

  it('a failed forward pass fails its requests with engine_failed, and the engine serves on', async () => {
    const engine = await Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS, allowFaultInjection: true });
    try {
      const running = engine.stream({
        prompt: 'The yard master',
        maxTokens: 400,
        temperature: 0,
        ignoreEos: true,
      });
      await running.settled;
      engine.injectFault({ failSteps: 1 });
      await assert.rejects(running.end, isEngineFailed);
      const out = await engine.generate({ prompt: 'still serving', maxTokens: 3, temperature: 0 });
      assert.equal(out.usage.completionTokens, 3);
    } finally {
      await engine.stop();
    }
  });
});
