/** OpenAI bodies → generate requests: shapes translated, unsupported features refused, rules shared. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChatRequest, parseCompletionRequest, parseModel } from '../../src/bridge/openai-request.ts';
import { InvalidRequestError } from '../../src/errors/errors.ts';

function refused(run: () => unknown, message: RegExp): void {
  assert.throws(run, (err: unknown) => err instanceof InvalidRequestError && message.test(err.message));
}

describe('parseCompletionRequest', () => {
  it('maps the OpenAI fields onto one generate request (nulls and unknown fields ignored)', () => {
    const parsed = parseCompletionRequest({
      model: 'tiny-gpt2',
      prompt: 'Hi',
      max_tokens: 5,
      temperature: 0.5,
      top_p: 0.9,
      top_k: 3,
      seed: 1,
      stop: 'x',
      presence_penalty: 0.1,
      frequency_penalty: 0.2,
      stream: true,
      stream_options: { include_usage: true },
      user: 'u1',
      logprobs: null,
      n: null,
      whatever: [1],
    });
    assert.deepEqual(parsed, {
      kind: 'completion',
      model: 'tiny-gpt2',
      stream: true,
      includeUsage: true,
      user: 'u1',
      requests: [
        {
          model: 'tiny-gpt2',
          prompt: 'Hi',
          maxTokens: 5,
          temperature: 0.5,
          topP: 0.9,
          topK: 3,
          seed: 1,
          stop: ['x'],
          presencePenalty: 0.1,
          frequencyPenalty: 0.2,
        },
      ],
    });
  });

  it('makes one request per prompt of an array, and takes token ids', () => {
    assert.deepEqual(
      parseCompletionRequest({ model: 'm', prompt: ['a', 'b'] }).requests.map((r) => r.prompt),
      ['a', 'b'],
    );
    assert.deepEqual(
      parseCompletionRequest({ model: 'm', prompt: [1, 2, 3] }).requests[0]!.promptTokenIds,
      [1, 2, 3],
    );
    assert.deepEqual(
      parseCompletionRequest({ model: 'm', prompt: [[1], [2, 3]] }).requests.map((r) => r.promptTokenIds),
      [[1], [2, 3]],
    );
    refused(() => parseCompletionRequest({ model: 'm', prompt: [] }), /^prompt must not be empty$/);
    refused(
      () => parseCompletionRequest({ model: 'm', prompt: [[1], [-1]] }),
      /^prompt\[1\]\[0\] must be an integer/,
    );
    refused(() => parseCompletionRequest({ model: 'm', prompt: Array(33).fill('a') }), /at most 32 entries/);
  });

  it('pins a version with model@version', () => {
    assert.deepEqual(parseModel('tiny-gpt2@1.2.0'), { model: 'tiny-gpt2', version: '1.2.0' });
    assert.deepEqual(parseCompletionRequest({ model: 'tiny-gpt2@1', prompt: 'x' }).requests[0], {
      model: 'tiny-gpt2',
      version: '1',
      prompt: 'x',
    });
    refused(() => parseModel('a@'), /^model must be a model id/);
    refused(() => parseModel('a.b'), /^model must be a model id/);
  });

  it('refuses known features it does not have, saying so', () => {
    const base = { model: 'm', prompt: 'x' };
    refused(() => parseCompletionRequest({ ...base, n: 3 }), /^n = 3 .*not supported/);
    refused(() => parseCompletionRequest({ ...base, best_of: 2 }), /^best_of = 2 is not supported/);
    refused(() => parseCompletionRequest({ ...base, echo: true }), /^echo is not supported/);
    refused(() => parseCompletionRequest({ ...base, suffix: 'end' }), /^suffix is not supported/);
    refused(() => parseCompletionRequest({ ...base, logit_bias: { 1: 5 } }), /^logit_bias is not supported/);
    refused(
      () => parseCompletionRequest({ model: 'm', messages: [] }),
      /send messages to \/v1\/chat\/completions/,
    );
    assert.equal(parseCompletionRequest({ ...base, n: 1, echo: false, logit_bias: {} }).requests.length, 1);
  });
});

describe('parseChatRequest', () => {
  it('flattens text parts and keeps roles; max_completion_tokens is max_tokens', () => {
    const parsed = parseChatRequest({
      model: 'm',
      messages: [
        { role: 'system', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'a' },
            { type: 'text', text: 'b' },
          ],
          name: 'x',
        },
        { role: 'assistant', content: null },
      ],
      max_completion_tokens: 9,
    });
    assert.deepEqual(parsed.requests[0], {
      model: 'm',
      maxTokens: 9,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'a\nb' },
        { role: 'assistant', content: '' },
      ],
    });
    assert.equal(parsed.kind, 'chat');
    assert.equal(parsed.stream, false);
  });

  it('refuses tools, tool messages, non-text parts and structured output', () => {
    const messages = [{ role: 'user', content: 'x' }];
    refused(() => parseChatRequest({ model: 'm', messages, tools: [{}] }), /^tools is not supported/);
    refused(() => parseChatRequest({ model: 'm', messages, functions: [{}] }), /^functions is not supported/);
    refused(
      () => parseChatRequest({ model: 'm', messages, function_call: 'auto' }),
      /^function_call is not supported/,
    );
    refused(
      () => parseChatRequest({ model: 'm', messages: [{ role: 'tool', content: 'r' }] }),
      /role 'tool'/,
    );
    refused(
      () =>
        parseChatRequest({ model: 'm', messages: [{ role: 'assistant', content: '', tool_calls: [{}] }] }),
      /tool calls is not supported/,
    );
    refused(
      () =>
        parseChatRequest({ model: 'm', messages: [{ role: 'user', content: [{ type: 'input_audio' }] }] }),
      /content\[0\]\.type "input_audio"/,
    );
    refused(
      () => parseChatRequest({ model: 'm', messages, response_format: { type: 'json_schema' } }),
      /response_format type "json_schema"/,
    );
    assert.equal(
      parseChatRequest({ model: 'm', messages, tool_choice: 'none', tools: [] }).requests.length,
      1,
    );
  });

  it('leaves the rules of each field to the shared validation, under the caller’s field names', () => {
    refused(() => parseChatRequest({ model: 'm', messages: [] }), /^messages must not be empty$/);
    refused(
      () => parseChatRequest({ model: 'm', messages: [{ role: '', content: 'x' }] }),
      /^messages\[0\]\.role must be/,
    );
    refused(
      () =>
        parseChatRequest({
          model: 'm',
          messages: [{ role: 'user', content: 'x' }],
          max_completion_tokens: -1,
        }),
      /^max_completion_tokens must be an integer between 1 and/,
    );
    refused(
      () =>
        parseChatRequest({
          model: 'm',
          messages: [{ role: 'user', content: 'x' }],
          max_tokens: 2,
          max_completion_tokens: 3,
        }),
      /not both/,
    );
  });
});
