/** The router's token estimate of a request (no tokenizer), checked against the bundled tokenizer. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelTokenizer } from '../../src/engine/tokenizer.ts';
import {
  ESTIMATE_CHARS_PER_TOKEN,
  ESTIMATE_DEFAULT_MAX_TOKENS,
  estimateRequestTokens,
} from '../../src/router/request-tokens.ts';
import { requireModel, ROOT, TINY_MODEL } from '../helpers/models.ts';

describe('estimateRequestTokens', () => {
  it('adds prompt, resumed tokens and max_tokens (or the engine default) as a replica reserves', () => {
    assert.equal(
      estimateRequestTokens({ model: 'm', promptTokenIds: [1, 2, 3], resumeTokenIds: [4, 5], maxTokens: 10 }),
      15,
    );
    assert.equal(estimateRequestTokens({ model: 'm', promptTokenIds: [1] }), 1 + ESTIMATE_DEFAULT_MAX_TOKENS);
    const text = 'x'.repeat(10 * ESTIMATE_CHARS_PER_TOKEN + 1);
    assert.equal(estimateRequestTokens({ model: 'm', prompt: text, maxTokens: 1 }), 11 + 1);
    assert.equal(
      estimateRequestTokens({
        model: 'm',
        messages: [
          { role: 'system', content: 'abc' },
          { role: 'user', content: 'def' },
        ],
        maxTokens: 1,
      }),
      Math.ceil(6 / ESTIMATE_CHARS_PER_TOKEN) + 1,
    );
  });

  it('does not overestimate the prompt of the corpus texts by more than 10%', async () => {
    const tokenizer = await ModelTokenizer.load(requireModel(TINY_MODEL));
    const dir = join(ROOT, 'models', 'corpus');
    for (const file of readdirSync(dir)) {
      const text = readFileSync(join(dir, file), 'utf8');
      const real = tokenizer.encode(text).length;
      const estimate = estimateRequestTokens({ model: 'm', prompt: text, maxTokens: 1 }) - 1;
      assert.ok(estimate <= real * 1.1, `${file}: estimated ${estimate} tokens, tokenizer says ${real}`);
    }
  });
});
