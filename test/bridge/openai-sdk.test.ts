/**
 * The official `openai` SDK against the bridge, over real HTTP, with a real router and replica:
 * completions and chat, with and without streaming. Every text must equal the greedy reference
 * the NATS client library gets for the same request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { SwitchyardClient } from '../../src/client/client.ts';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { MODEL, startCluster, type TestCluster } from './harness.ts';

const MAX_TOKENS = 24;

describe('the openai SDK against the bridge', () => {
  let cluster: TestCluster;
  let sdk: OpenAI;
  let client: SwitchyardClient;

  before(async () => {
    cluster = await startCluster();
    sdk = new OpenAI({ baseURL: `${cluster.bridges[0]!.url}/v1`, apiKey: 'x', maxRetries: 0 });
    client = await SwitchyardClient.connect({ nats: { servers: cluster.server.url } });
  });

  after(async () => {
    await client?.close();
    await cluster?.close();
  });

  async function reference(
    req: Omit<GenerateRequest, 'model'>,
  ): Promise<{ text: string; prompt: number; completion: number }> {
    const r = await client.generate({ model: MODEL, temperature: 0, maxTokens: MAX_TOKENS, ...req });
    return { text: r.text, prompt: r.usage.promptTokens, completion: r.usage.completionTokens };
  }

  it('completions: text, usage and shape equal the greedy reference', async () => {
    const ref = await reference({ prompt: 'Once upon a time' });
    const res = await sdk.completions.create({
      model: MODEL,
      prompt: 'Once upon a time',
      max_tokens: MAX_TOKENS,
      temperature: 0,
    });
    assert.equal(res.object, 'text_completion');
    assert.match(res.id, /^cmpl-/);
    assert.equal(res.model, MODEL);
    assert.equal(res.choices.length, 1);
    assert.equal(res.choices[0]!.text, ref.text);
    assert.ok(['stop', 'length'].includes(res.choices[0]!.finish_reason));
    assert.deepEqual(res.usage, {
      prompt_tokens: ref.prompt,
      completion_tokens: ref.completion,
      total_tokens: ref.prompt + ref.completion,
    });
  });

  it('completions, streaming: the deltas join to the reference text', async () => {
    const ref = await reference({ prompt: 'The river' });
    const stream = await sdk.completions.create({
      model: MODEL,
      prompt: 'The river',
      max_tokens: MAX_TOKENS,
      temperature: 0,
      stream: true,
    });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      // Every chunk names the version that serves it (the cluster's pin).
      assert.equal(chunk.system_fingerprint, `${MODEL}@1`);
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, ref.text);
    assert.ok(finish === 'stop' || finish === 'length', `finish_reason ${finish}`);
  });

  it('completions with a prompt array: one choice per prompt, in order', async () => {
    const prompts = ['First prompt', 'Second one'];
    const refs = await Promise.all(prompts.map((prompt) => reference({ prompt })));
    const res = await sdk.completions.create({
      model: MODEL,
      prompt: prompts,
      max_tokens: MAX_TOKENS,
      temperature: 0,
    });
    assert.deepEqual(
      res.choices.map((c) => [c.index, c.text]),
      refs.map((r, i) => [i, r.text]),
    );
    assert.equal(res.usage?.completion_tokens, refs[0]!.completion + refs[1]!.completion);
  });

  it('chat: the message equals the reference of the same messages (chat template on the replica)', async () => {
    const messages = [
      { role: 'system' as const, content: 'You are terse.' },
      { role: 'user' as const, content: 'Tell me a story' },
    ];
    const ref = await reference({ messages });
    const res = await sdk.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: MAX_TOKENS,
      temperature: 0,
    });
    assert.equal(res.object, 'chat.completion');
    assert.match(res.id, /^chatcmpl-/);
    assert.equal(res.choices[0]!.message.role, 'assistant');
    assert.equal(res.choices[0]!.message.content, ref.text);
    assert.equal(res.usage?.prompt_tokens, ref.prompt);
    assert.equal(res.usage?.completion_tokens, ref.completion);
  });

  it('chat, streaming with include_usage: role first, reference text, usage chunk last', async () => {
    const messages = [{ role: 'user' as const, content: 'Hello there' }];
    const ref = await reference({ messages });
    const stream = await sdk.chat.completions.create({
      model: MODEL,
      messages,
      max_completion_tokens: MAX_TOKENS,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(text, ref.text);
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, {
      prompt_tokens: ref.prompt,
      completion_tokens: ref.completion,
      total_tokens: ref.prompt + ref.completion,
    });
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
  });

  it('chat with text content parts: flattened, same answer as the joined string', async () => {
    const ref = await reference({ messages: [{ role: 'user', content: 'Part one\nPart two' }] });
    const res = await sdk.chat.completions.create({
      model: MODEL,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Part one' },
            { type: 'text', text: 'Part two' },
          ],
        },
      ],
      max_tokens: MAX_TOKENS,
      temperature: 0,
    });
    assert.equal(res.choices[0]!.message.content, ref.text);
  });

  it('a pinned version (model@version) is served by that version', async () => {
    const ref = await reference({ prompt: 'Pinned' });
    const res = await sdk.completions.create({
      model: `${MODEL}@1`,
      prompt: 'Pinned',
      max_tokens: MAX_TOKENS,
      temperature: 0,
    });
    assert.equal(res.choices[0]!.text, ref.text);
    assert.equal(res.system_fingerprint, `${MODEL}@1`);
    await assert.rejects(
      sdk.completions.create({ model: `${MODEL}@9`, prompt: 'Pinned', max_tokens: 4 }),
      (err: unknown) => err instanceof OpenAI.NotFoundError,
    );
  });

  it('models.list names the served model', async () => {
    const models = [];
    for await (const m of sdk.models.list()) models.push(m);
    assert.deepEqual(
      models.map((m) => [m.id, m.object, m.owned_by]),
      [[MODEL, 'model', 'switchyard']],
    );
  });

  it('an SDK error carries the status, type and code of the error body', async () => {
    await assert.rejects(
      sdk.completions.create({ model: MODEL, prompt: 'x', temperature: 5 }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.BadRequestError);
        assert.equal(err.status, 400);
        assert.equal(err.type, 'invalid_request_error');
        assert.equal(err.code, 'invalid_request');
        assert.match(err.message, /temperature must be a number between 0 and 2, got 5/);
        return true;
      },
    );
  });
});
