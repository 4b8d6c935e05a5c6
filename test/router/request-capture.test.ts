/**
 * The router's capture record of one request (src/router/request-capture.ts): which outcomes are
 * final, and how the output's text and token ids are put together across resumes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { trace } from '@opentelemetry/api';
import { RequestCapture } from '../../src/router/request-capture.ts';
import { BusyError, DeadlineExceededError } from '../../src/errors/errors.ts';
import type { End } from '../../src/cluster/messages/stream.ts';

const span = trace.wrapSpanContext({ traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), traceFlags: 1 });

function capture(resumeTokenIds?: number[]): RequestCapture {
  return new RequestCapture({
    requestId: 'k1:req',
    requester: 'bridge',
    router: 'rt',
    req: {
      model: 'm',
      prompt: 'hi',
      maxTokens: 8,
      temperature: 0,
      ...(resumeTokenIds ? { resumeTokenIds } : {}),
    },
    keyId: 'k1',
    text: true,
    span,
  });
}

const end = (over: Partial<End> = {}): End => ({
  seq: 2,
  attempt: 1,
  finishReason: 'length',
  usage: { promptTokens: 3, completionTokens: 2 },
  attempts: 1,
  ...over,
});

describe('RequestCapture', () => {
  it('a completed request is final, with its output, trace and key', () => {
    const c = capture();
    c.attempt(1, '1');
    c.chunk([5, 6], 'ab');
    const e = c.event(
      { kind: 'end', end: end({ text: '!', modelVersion: '1' }), attemptResumed: false },
      1,
      3,
    );
    assert.equal(e.final, true);
    assert.equal(e.output_text, 'ab!');
    assert.deepEqual(e.output_token_ids, [5, 6]);
    assert.equal(e.trace_id, 'ab'.repeat(16));
    assert.equal(e.api_key_id, 'k1');
    assert.equal(e.model_version, '1');
    assert.equal(e.text_complete, true);
  });

  it("a client's resend is completed with the resumed text the replica sent", () => {
    const c = capture([1, 2, 3]);
    c.attempt(3, '1');
    c.chunk([4], 'd');
    const e = c.event({ kind: 'end', end: end({ resumedText: 'abc' }), attemptResumed: true }, 3, 3);
    assert.deepEqual(e.output_token_ids, [1, 2, 3, 4]);
    assert.equal(e.output_text, 'abcd');
    assert.equal(e.text_complete, true);
  });

  it('without the resumed text the output is marked incomplete', () => {
    const c = capture([1, 2]);
    c.attempt(2, undefined);
    c.chunk([3], 'c');
    const e = c.event({ kind: 'end', end: end(), attemptResumed: true }, 2, 3);
    assert.equal(e.output_text, 'c');
    assert.equal(e.text_complete, false);
  });

  it('a cancel from a client that resends, and a retryable error, are provisional; the rest final', () => {
    const c = capture();
    c.attempt(1, '1');
    assert.equal(c.event({ kind: 'cancelled', final: false }, 1, 0).final, false);
    assert.equal(c.event({ kind: 'cancelled', final: true }, 1, 0).finish_reason, 'cancelled');
    const busy = c.event({ kind: 'error', error: new BusyError('full'), final: false }, 1, 0);
    assert.equal(busy.final, false);
    assert.equal(busy.error?.code, 'busy');
    assert.equal(
      c.event({ kind: 'error', error: new DeadlineExceededError('late'), final: true }, 1, 0).final,
      true,
    );
  });
});
