/**
 * The OpenAI response shapes' `system_fingerprint`: it names the model version that served the
 * answer (`<model id>@<version>`), from the cluster's pin once known, so that a client can tell
 * during a hot swap which version made the tokens of each chunk and body.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  responseBody,
  servedMeta,
  streamChunk,
  usageChunk,
  versionFingerprint,
  type ResponseMeta,
} from '../../src/bridge/openai-response.ts';

const usage = { promptTokens: 3, completionTokens: 2 };

function meta(over: Partial<ResponseMeta> = {}): ResponseMeta {
  return {
    kind: 'completion',
    id: 'cmpl-anonymous:r1',
    created: 1,
    model: 'tiny-gpt2',
    modelId: 'tiny-gpt2',
    fingerprint: null,
    includeUsage: true,
    ...over,
  };
}

describe('system_fingerprint', () => {
  it('names the model id and version as a pinned request does', () => {
    assert.equal(versionFingerprint('tiny-gpt2', '2'), 'tiny-gpt2@2');
  });

  it('servedMeta puts the version the cluster pinned in place of the expectation', () => {
    // During a swap the bridge expects no single version (null), or a stale one.
    assert.equal(servedMeta(meta(), '2').fingerprint, 'tiny-gpt2@2');
    assert.equal(servedMeta(meta({ fingerprint: 'tiny-gpt2@1' }), '2').fingerprint, 'tiny-gpt2@2');
    // The caller's model field stays as written (a pinned `tiny-gpt2@2` included).
    assert.equal(servedMeta(meta({ model: 'tiny-gpt2@2' }), '2').model, 'tiny-gpt2@2');
  });

  it('servedMeta keeps the expectation while the version is unknown (a cache replay)', () => {
    const m = meta({ fingerprint: 'tiny-gpt2@1' });
    assert.equal(servedMeta(m, undefined), m);
    assert.equal(servedMeta(meta(), undefined).fingerprint, null);
  });

  it('every chunk, the usage chunk and the body carry it, for completions and chat', () => {
    for (const kind of ['completion', 'chat'] as const) {
      const served = servedMeta(meta({ kind }), '2');
      assert.equal(streamChunk(served, 0, 'a', null, true).system_fingerprint, 'tiny-gpt2@2');
      assert.equal(streamChunk(served, 0, '', 'length').system_fingerprint, 'tiny-gpt2@2');
      assert.equal(usageChunk(served, [usage]).system_fingerprint, 'tiny-gpt2@2');
      const body = responseBody(served, [{ text: 'ab', finishReason: 'length', usage }]);
      assert.equal(body.system_fingerprint, 'tiny-gpt2@2');
    }
    // Unknown stays JSON null, as OpenAI sends it.
    assert.equal(streamChunk(meta(), 0, 'a', null).system_fingerprint, null);
  });
});
