/**
 * The engine on the bundled model, for real: batching equivalence, exact resume, cancellation,
 * limits and validation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BusyError, InvalidRequestError } from '../../src/errors/errors.ts';
import { Engine } from '../../src/engine/engine.ts';
import type { GenerateParams } from '../../src/cluster/messages/params.ts';
import { requireModel, TEST_THREADS, TINY_MODEL, TINY_MODEL_CACHE_BRANCH } from '../helpers/models.ts';

const PROMPTS = [
  'The yard master',
  'Trains arrive at dawn and the switch crews are already out on the frozen ground, checking',
  'A',
  'Distributed systems fail in partial ways; the',
  'Once upon a time, in a small town by the river, there lived a baker who',
];

/** Consumes a stream, calling `onChunk` with the running chunk count. */
async function collect(
  engine: Engine,
  params: GenerateParams,
  onChunk?: (n: number) => void,
): Promise<{ tokenIds: number[]; text: string }> {
  const stream = engine.stream(params);
  const tokenIds: number[] = [];
  let text = '';
  let n = 0;
  for await (const chunk of stream) {
    tokenIds.push(...chunk.tokenIds);
    text += chunk.text;
    onChunk?.(++n);
  }
  await stream.end;
  return { tokenIds, text };
}

/** Runs each request alone, then all of them joining the batch at different steps. */
async function aloneVsStaggered(engine: Engine, params: GenerateParams[]): Promise<void> {
  const alone: number[][] = [];
  for (const p of params) alone.push((await engine.generate(p)).tokenIds);

  const results: Promise<{ tokenIds: number[] }>[] = [];
  let started = 0;
  const startNext = (): void => {
    const p = params[started++];
    if (!p) return;
    // Each request starts when the previous one has received a few chunks: newcomers join a
    // running batch between decode steps, with KV caches of different lengths.
    let kicked = false;
    results.push(
      collect(engine, p, (n) => {
        if (!kicked && n === 3) {
          kicked = true;
          startNext();
        }
      }),
    );
  };
  startNext();
  startNext(); // two start together: batched prefill of different lengths
  while (results.length < params.length) await new Promise((r) => setTimeout(r, 5));
  const batched = await Promise.all(results);
  batched.forEach((b, i) => assert.deepEqual(b.tokenIds, alone[i], `request ${i} differs when batched`));
}

describe('engine on the bundled model', () => {
  let engine: Engine;

  before(async () => {
    engine = await Engine.start({ modelDir: requireModel(TINY_MODEL), ...TEST_THREADS, maxBatchSize: 8 });
  });
  after(async () => {
    await engine.stop();
  });

  it('generates varied greedy text, not one repeated token', async () => {
    const out = await engine.generate({ prompt: PROMPTS[1]!, maxTokens: 32, temperature: 0 });
    assert.equal(out.tokenIds.length, 32);
    assert.equal(out.finishReason, 'length');
    assert.ok(new Set(out.tokenIds).size > 4, `greedy output too repetitive: ${out.tokenIds.join(',')}`);
    assert.equal(out.text, engine.tokenizer.decode(out.tokenIds));
    assert.equal(out.usage.completionTokens, 32);
    assert.equal(out.usage.promptTokens, engine.tokenizer.encode(PROMPTS[1]!).length);
  });

  it('batched greedy output equals each request alone, with requests joining at different steps', async () => {
    await aloneVsStaggered(
      engine,
      PROMPTS.map((prompt, i) => ({ prompt, maxTokens: 20 + 3 * i, temperature: 0 })),
    );
  });

  it('batched seeded sampling equals each request alone', async () => {
    await aloneVsStaggered(
      engine,
      PROMPTS.map((prompt, i) => ({
        prompt,
        maxTokens: 24,
        temperature: 0.9,
        topP: 0.95,
        topK: i % 2 === 0 ? 50 : 0,
        presencePenalty: 0.3,
        frequencyPenalty: 0.2,
        seed: 1234 + i,
      })),
    );
  });

  it('sampling without a seed gets one, and the same seed reproduces the output', async () => {
    const first = await engine.generate({ prompt: PROMPTS[0]!, maxTokens: 16, temperature: 1 });
    assert.equal(typeof first.seed, 'number');
    const again = await engine.generate({
      prompt: PROMPTS[0]!,
      maxTokens: 16,
      temperature: 1,
      seed: first.seed!,
    });
    assert.deepEqual(again.tokenIds, first.tokenIds);
  });

  it('stops at a stop sequence and does not emit it', async () => {
    const full = await engine.generate({ prompt: PROMPTS[3]!, maxTokens: 40, temperature: 0 });
    const stop = full.text.slice(10, 13);
    assert.ok(stop.length === 3, 'reference output too short for the stop test');
    const stopped = await engine.generate({
      prompt: PROMPTS[3]!,
      maxTokens: 40,
      temperature: 0,
      stop: [stop],
    });
    assert.equal(stopped.finishReason, 'stop');
    assert.equal(stopped.text, full.text.slice(0, full.text.indexOf(stop)));
  });

  it('renders chat messages with the model chat template', async () => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Name a rail yard job.' },
    ];
    const rendered = engine.tokenizer.applyChatTemplate(messages);
    assert.match(rendered, /<\|im_start\|>user\nName a rail yard job\.<\|im_end\|>/);
    assert.ok(rendered.endsWith('<|im_start|>assistant\n'));
    const chat = await engine.generate({ messages, maxTokens: 12, temperature: 0 });
    const plain = await engine.generate({ prompt: rendered, maxTokens: 12, temperature: 0 });
    assert.deepEqual(chat.tokenIds, plain.tokenIds);
  });

  it('refuses bad parameters with invalid_request naming the problem', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ prompt: 'x', maxTokens: -3 }, /max_tokens must be an integer between 1 and 1048576, got -3/],
      [{ prompt: 'x', topP: 0 }, /top_p must be a number in \(0, 1\], got 0/],
      [{ prompt: 'x', topP: 1.5 }, /top_p/],
      [{ prompt: '' }, /prompt must not be empty/],
      [{ prompt: 5 }, /prompt must be a string, got 5/],
      [{ prompt: 'x', temperature: 'hot' }, /temperature must be a number/],
      [{ prompt: 'x', stop: 'x' }, /stop must be an array of strings/],
      [{}, /exactly one of prompt, prompt_token_ids and messages/],
      [{ messages: [{ role: 'user' }] }, /messages\[0\].content must be a string/],
      [{ promptTokenIds: [1, 99999] }, /outside the vocabulary/],
      [{ prompt: 'x', maxTokens: 0 }, /max_tokens must be an integer between 1 and 1048576, got 0/],
      [{ prompt: 'x', resumeTokenIds: [99999] }, /outside the vocabulary/],
      [{ prompt: 'hello', maxTokens: 600 }, /maximum context length is 512 tokens.*600 to generate/],
      [
        { promptTokenIds: new Array<number>(600).fill(1) },
        /maximum context length is 512 tokens.*600 in the prompt/,
      ],
      // Too long by its size alone: no token can cover more than maxTokenBytes bytes.
      [
        { prompt: 'x'.repeat(512 * engine.tokenizer.maxTokenBytes + 1) },
        /maximum context length is 512 tokens, but the request needs at least 514 \(at least 513 in the prompt/,
      ],
    ];
    for (const [params, message] of cases) {
      assert.throws(
        () => engine.stream(params as GenerateParams),
        (err: unknown) =>
          err instanceof InvalidRequestError && err.code === 'invalid_request' && message.test(err.message),
        `expected ${String(message)} for ${JSON.stringify(params).slice(0, 80)}`,
      );
    }
  });

  it('refuses a prompt that needs its tokens to be judged through the stream', async () => {
    const cases: Array<[GenerateParams, RegExp]> = [
      [{ prompt: 'word '.repeat(600) }, /maximum context length is 512 tokens.*\d+ in the prompt/],
      [{ prompt: 'word '.repeat(100), maxTokens: 400 }, /\d+ in the prompt, 0 resumed, 400 to generate/],
      [
        { messages: [{ role: 'user', content: 'word '.repeat(600) }] },
        /maximum context length is 512 tokens/,
      ],
    ];
    for (const [params, message] of cases) {
      const stream = engine.stream(params); // returns at once: the tokens decide
      const refused = (err: unknown): boolean =>
        err instanceof InvalidRequestError && message.test(err.message);
      await assert.rejects(stream.settled, refused);
      await assert.rejects(stream.end, refused);
      await assert.rejects(async () => {
        for await (const _ of stream) void _;
      }, refused);
    }
    assert.equal(engine.inFlight, 0);
  });

  it('settled gives the prompt tokens and max_tokens the request was admitted with', async () => {
    const stream = engine.stream({ prompt: PROMPTS[0]!, temperature: 0 });
    const admitted = await stream.settled;
    const promptTokens = engine.tokenizer.encode(PROMPTS[0]!).length;
    assert.deepEqual(admitted, { promptTokens, maxTokens: 256 });
    assert.equal(stream.promptTokens, promptTokens);
    assert.equal(stream.maxTokens, 256);
    for await (const _ of stream) void _;
    assert.equal((await stream.end).usage.promptTokens, promptTokens);
  });

  it('a text prompt tokenized in the tokenizer thread gives the same tokens as the tokenizer here', async () => {
    for (const prompt of PROMPTS) {
      const ids = engine.tokenizer.encode(prompt);
      const byText = await engine.generate({ prompt, maxTokens: 8, temperature: 0 });
      const byIds = await engine.generate({ promptTokenIds: ids, maxTokens: 8, temperature: 0 });
      assert.equal(byText.usage.promptTokens, ids.length);
      assert.deepEqual(byText.tokenIds, byIds.tokenIds);
    }
  });
});

describe('engine resume', () => {
  for (const [name, sampling] of [
    ['greedy', { temperature: 0 }],
    ['seeded sampling', { temperature: 0.8, topP: 0.9, frequencyPenalty: 0.5, seed: 42 }],
  ] as const) {
    it(`resuming from the first k tokens on a fresh engine gives the same tokens (${name})`, async () => {
      const params: GenerateParams = { prompt: PROMPTS[4]!, maxTokens: 30, ...sampling };
      const first = await Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS });
      const full = await first.generate(params).finally(() => first.stop());
      assert.equal(full.tokenIds.length, 30);

      const k = 11;
      const second = await Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS });
      try {
        const resumed = await second.generate({
          ...params,
          resumeTokenIds: full.tokenIds.slice(0, k),
          maxTokens: 30 - k,
        });
        assert.deepEqual(resumed.tokenIds, full.tokenIds.slice(k));
        // Text emitted before the cut plus the resumed text is the uninterrupted text.
        const before = second.tokenizer.decode(full.tokenIds.slice(0, k));
        assert.equal(before + resumed.text, full.text);
      } finally {
        await second.stop();
      }
    });
  }
});

describe('engine limits and cancellation', () => {
  let engine: Engine;
  before(async () => {
    engine = await Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS, maxBatchSize: 1, maxQueue: 1 });
  });
  after(async () => {
    await engine.stop();
  });

  it('answers busy at once when the batch and queue are full', async () => {
    const controller = new AbortController();
    const a = engine.stream(
      { prompt: 'first', maxTokens: 100, temperature: 0 },
      { signal: controller.signal },
    );
    const b = engine.stream({ prompt: 'second', maxTokens: 5, temperature: 0 });
    assert.throws(() => engine.stream({ prompt: 'third', maxTokens: 5 }), BusyError);
    controller.abort();
    const endA = await a.end;
    assert.equal(endA.finishReason, 'cancelled');
    for await (const _ of b) void _;
    assert.equal((await b.end).finishReason, 'length');
  });

  it('cancelling a running request frees its slot for a queued one', async () => {
    const controller = new AbortController();
    const a = engine.stream(
      { prompt: 'long one', maxTokens: 400, temperature: 0 },
      { signal: controller.signal },
    );
    const b = engine.stream({ prompt: 'queued one', maxTokens: 8, temperature: 0 });
    let chunksA = 0;
    for await (const _ of a) {
      if (++chunksA === 3) controller.abort();
    }
    const endA = await a.end;
    assert.equal(endA.finishReason, 'cancelled');
    assert.ok(endA.usage.completionTokens < 400, 'cancelled request ran to its end');
    let chunksB = 0;
    for await (const _ of b) chunksB++;
    assert.equal((await b.end).usage.completionTokens, 8);
    assert.ok(chunksB > 0);
    assert.equal(engine.inFlight, 0);
  });
});

describe('engine with a use_cache_branch decoder', () => {
  it('gives the same greedy output as the plain decoder', async () => {
    const params: GenerateParams = { prompt: PROMPTS[1]!, maxTokens: 24, temperature: 0 };
    const plain = await Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS });
    const a = await plain.generate(params).finally(() => plain.stop());
    const branched = await Engine.start({ modelDir: requireModel(TINY_MODEL_CACHE_BRANCH), ...TEST_THREADS });
    const b = await branched.generate(params).finally(() => branched.stop());
    assert.deepEqual(b.tokenIds, a.tokenIds);
  });
});
