/**
 * The pure parts of `POST /v1/feedback`: which cluster request an id names and whose it is
 * (response ids and bare request ids, with and without keys), and the body's shape.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { feedbackRequestId, parseFeedbackBody } from '../../src/bridge/feedback.ts';
import { requestIdOfResponse, responseId } from '../../src/bridge/openai-response.ts';
import { scopedRequestId, tenantOfRequestId } from '../../src/bridge/tenancy.ts';
import { ForbiddenError, InvalidRequestError } from '../../src/errors/errors.ts';

describe('feedback ids', () => {
  it('reads back the cluster id a response id was made from', () => {
    for (const kind of ['chat', 'completion'] as const) {
      for (const id of ['k1:abc', 'k1::hash_-x', 'anonymous:a.b:c']) {
        assert.equal(requestIdOfResponse(responseId(kind, id)), id);
      }
    }
    assert.equal(requestIdOfResponse('cmpl-noscope'), undefined, 'cluster ids always have a scope');
    assert.equal(requestIdOfResponse('plain-id'), undefined);
    assert.equal(tenantOfRequestId('k1::hash'), 'k1');
    assert.equal(tenantOfRequestId(':x'), undefined);
    assert.equal(tenantOfRequestId('bare'), undefined);
  });

  it('decides ownership from the id alone where keys are configured', () => {
    const k1 = { keyId: 'k1' };
    assert.equal(feedbackRequestId('chatcmpl-k1:abc', k1, true), 'k1:abc');
    assert.equal(feedbackRequestId('abc', k1, true), 'k1:abc');
    assert.equal(feedbackRequestId('x'.repeat(128), k1, true), scopedRequestId('k1', 'x'.repeat(128)));
    assert.throws(() => feedbackRequestId('cmpl-k2:abc', k1, true), ForbiddenError);
    // A key id that merely starts like another is another key.
    assert.throws(() => feedbackRequestId('cmpl-k10:abc', k1, true), ForbiddenError);
    // Without keys every caller is one tenant: no ownership to check.
    const anonymous = { keyId: 'anonymous' };
    assert.equal(feedbackRequestId('cmpl-anonymous:abc', anonymous, false), 'anonymous:abc');
    assert.equal(feedbackRequestId('abc', anonymous, false), 'anonymous:abc');
  });

  it('maps the body: thumbs from rating words, numbers as ratings, the optional fields passed on', () => {
    assert.deepEqual(parseFeedbackBody({ id: 'a', rating: 'up' }), { id: 'a', input: { thumbs: 'up' } });
    assert.deepEqual(parseFeedbackBody({ id: 'a', rating: 0.5, index: 1, tags: ['t'], comment: null }), {
      id: 'a',
      input: { rating: 0.5, index: 1, tags: ['t'] },
    });
    assert.throws(() => parseFeedbackBody({ id: 'a', rating: 'up', thumbs: 'up' }), InvalidRequestError);
    assert.throws(() => parseFeedbackBody({ id: 'a', rating: true }), /^InvalidRequestError: rating must be/);
  });
});
