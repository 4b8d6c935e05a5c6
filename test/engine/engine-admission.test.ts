/**
 * Admission on the bundled model: resumes that had already ended end at once (the query of
 * death never reaches the worker), prompts are tokenized off the main thread, and the running
 * step shows in the stats.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InvalidRequestError } from '../../src/errors/errors.ts';
import { Engine } from '../../src/engine/engine.ts';
import { PROMPT_MAX_CHARS, type GenerateParams } from '../../src/cluster/messages/params.ts';
import type { EngineStream } from '../../src/engine/types.ts';
import { requireModel, TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';

const PROMPT = 'Distributed systems fail in partial ways; the';

/** Drains a stream: its chunks and its end. */
async function drain(stream: EngineStream): Promise<{ chunks: number; end: Awaited<EngineStream['end']> }> {
  let chunks = 0;
  for await (const _ of stream) chunks++;
  return { chunks, end: await stream.end };
}

describe('engine admission of resumes that already ended', () => {
  let engine: Engine;
  before(async () => {
    engine = await Engine.start({ modelDir: requireModel(TINY_MODEL), ...TEST_THREADS, maxBatchSize: 4 });
  });
  after(async () => {
    await engine.stop();
  });

  /** Ends at once with `reason`, no chunks, no completion tokens, without a forward pass. */
  async function endsAtOnce(params: GenerateParams, reason: 'stop' | 'length'): Promise<void> {
    const progress = engine.stats().progress;
    const stream = engine.stream(params);
    const { chunks, end } = await drain(stream);
    assert.equal(chunks, 0);
    assert.equal(end.finishReason, reason);
    const promptTokens = params.promptTokenIds?.length ?? engine.tokenizer.encode(params.prompt ?? '').length;
    assert.deepEqual(end.usage, { promptTokens, completionTokens: 0 });
    assert.equal(end.text, undefined);
    assert.deepEqual(await stream.settled, { promptTokens, maxTokens: 0 });
    assert.equal(engine.stats().progress, progress, 'the request reached the worker');
    assert.equal(engine.inFlight, 0);
  }

  it('a resume whose tokens complete a stop sequence ends with stop (it used to kill the worker)', async () => {
    const full = await engine.generate({ prompt: PROMPT, maxTokens: 40, temperature: 0 });
    const stop = full.text.slice(12, 15);
    const stopped = await engine.generate({ prompt: PROMPT, maxTokens: 40, temperature: 0, stop: [stop] });
    assert.equal(stopped.finishReason, 'stop');
    // Every token it delivered, the one that completed the stop included: its end was "lost".
    const resumeTokenIds = stopped.tokenIds;
    await endsAtOnce(
      { prompt: PROMPT, resumeTokenIds, maxTokens: 40 - resumeTokenIds.length, stop: [stop] },
      'stop',
    );
    await endsAtOnce(
      {
        prompt: PROMPT,
        resumeTokenIds: resumeTokenIds.slice(0, -1).concat(resumeTokenIds.at(-1)!, 7),
        stop: [stop],
      },
      'stop',
    );
    // The same tokens without the stop sequence resume normally.
    const resumed = await engine.generate({ prompt: PROMPT, resumeTokenIds, maxTokens: 3, temperature: 0 });
    assert.deepEqual(resumed.tokenIds, full.tokenIds.slice(resumeTokenIds.length, resumeTokenIds.length + 3));
  });

  it('a resume that contains an end-of-sequence token ends with stop, unless ignore_eos', async () => {
    const eos = engine.info.eosTokenIds[0]!;
    const prompt = engine.tokenizer.encode(PROMPT);
    await endsAtOnce({ promptTokenIds: prompt, resumeTokenIds: [11, eos, 12], temperature: 0 }, 'stop');
    await endsAtOnce({ prompt: PROMPT, resumeTokenIds: [eos], temperature: 0 }, 'stop');
    const ignored = await engine.generate({
      promptTokenIds: prompt,
      resumeTokenIds: [11, eos],
      ignoreEos: true,
      maxTokens: 2,
      temperature: 0,
    });
    assert.equal(ignored.usage.completionTokens, 2);
  });

  it('a resume that already reached max_tokens (max_tokens 0) ends with length', async () => {
    await endsAtOnce(
      { prompt: PROMPT, resumeTokenIds: [11, 12, 13], maxTokens: 0, temperature: 0 },
      'length',
    );
    assert.throws(
      () => engine.stream({ prompt: PROMPT, resumeTokenIds: [], maxTokens: 0 }),
      (err: unknown) =>
        err instanceof InvalidRequestError && /max_tokens must be an integer between 1/.test(err.message),
    );
  });

  it('a resume that filled the context ends with length when max_tokens was left to the default', async () => {
    const prompt = engine.tokenizer.encode(PROMPT);
    const resumeTokenIds = new Array<number>(engine.info.contextLength - prompt.length).fill(11);
    await endsAtOnce({ promptTokenIds: prompt, resumeTokenIds, temperature: 0 }, 'length');
  });

  it('keeps serving after all of them, with the same output as before', async () => {
    const a = await engine.generate({ prompt: PROMPT, maxTokens: 16, temperature: 0 });
    const b = await engine.generate({ prompt: PROMPT, maxTokens: 16, temperature: 0 });
    assert.equal(a.tokenIds.length, 16);
    assert.deepEqual(b.tokenIds, a.tokenIds);
    const failed = await Promise.race([engine.failed, new Promise((r) => setTimeout(() => r('alive'), 50))]);
    assert.equal(failed, 'alive');
  });
});

describe('engine tokenizer thread', () => {
  let engine: Engine;
  before(async () => {
    engine = await Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS });
  });
  after(async () => {
    await engine.stop();
  });

  it('a prompt at the size limit is tokenized without blocking the main thread', async () => {
    // Chat messages are not refused by size alone, so the whole prompt reaches the tokenizer.
    const words = ['yard', 'switch', 'signal', 'freight', 'caboose', 'ballast', 'siding', 'dispatch'];
    let content = '';
    for (let i = 0; content.length < PROMPT_MAX_CHARS; i++) content += `${words[(i * 7) % 8]}${i % 13} `;
    const messages = [{ role: 'user', content: content.slice(0, PROMPT_MAX_CHARS) }];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = performance.now();
    const stream = engine.stream({ messages, temperature: 0 });
    const returnedMs = performance.now() - started;
    const refused = await stream.settled.then(
      () => undefined,
      (err: unknown) => err,
    );
    const tokenizeMs = performance.now() - started;
    clearInterval(timer);
    assert.ok(refused instanceof InvalidRequestError, `expected invalid_request, got ${String(refused)}`);
    // The count in the message is the tokenizer's own count of the rendered prompt.
    const expected = engine.tokenizer.encode(engine.tokenizer.applyChatTemplate(messages)).length;
    assert.match(refused.message, new RegExp(`needs ${expected + 1} \\(${expected} in the prompt`));
    assert.ok(ticks > 5, `the main thread was blocked: ${ticks} timer ticks while tokenizing`);
    console.log(
      `# stream() returned in ${returnedMs.toFixed(1)} ms; tokenizing ${expected} tokens took ` +
        `${tokenizeMs.toFixed(0)} ms with ${ticks} 1 ms-timer ticks on the main thread`,
    );
  });

  it('a request cancelled while it is tokenized ends as cancelled', async () => {
    const controller = new AbortController();
    const stream = engine.stream({ prompt: PROMPT, temperature: 0 }, { signal: controller.signal });
    controller.abort();
    const { chunks, end } = await drain(stream);
    assert.equal(chunks, 0);
    assert.equal(end.finishReason, 'cancelled');
    assert.equal(engine.inFlight, 0);
  });
});

describe('engine step stats', () => {
  it('reports the running forward pass: its start and its tokens (rows × new positions)', async () => {
    const engine = await Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS });
    try {
      assert.equal(engine.stats().stepStartedAt, null);
      const seen = new Set<number>();
      let bad: unknown;
      const stream = engine.stream({ prompt: PROMPT, maxTokens: 200, temperature: 0, ignoreEos: true });
      const poll = setInterval(() => {
        const { stepStartedAt, stepTokens } = engine.stats();
        if (stepStartedAt === null) {
          if (stepTokens !== 0) bad = { stepStartedAt, stepTokens };
          return;
        }
        if (stepStartedAt > Date.now() || stepTokens <= 0) bad = { stepStartedAt, stepTokens };
        seen.add(stepTokens);
      }, 0);
      await drain(stream);
      clearInterval(poll);
      assert.equal(bad, undefined);
      assert.ok(seen.has(1), `a decode step of one row covers 1 token; saw ${[...seen].join(', ')}`);
      assert.equal(engine.stats().stepStartedAt, null);
      assert.equal(engine.stats().stepTokens, 0);
    } finally {
      await engine.stop();
    }
  });
});
