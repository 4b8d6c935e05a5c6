/** The one error → HTTP mapping, code by code (DESIGN.md "Errors"). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HttpInputError, toHttpError } from '../../src/bridge/http-errors.ts';
import {
  BusyError,
  CancelledError,
  DeadlineExceededError,
  ForbiddenError,
  InternalError,
  InvalidRequestError,
  ModelNotFoundError,
  RateLimitedError,
  UnauthorizedError,
  UnavailableError,
  EngineFailedError,
} from '../../src/errors/errors.ts';

describe('toHttpError', () => {
  it('maps every code to its status, type and headers', () => {
    const cases: Array<[Error, number, string, Record<string, string>]> = [
      [new InvalidRequestError('top_p must be …'), 400, 'invalid_request_error', {}],
      [new ModelNotFoundError('no model x'), 404, 'invalid_request_error', {}],
      [new UnauthorizedError('no key'), 401, 'authentication_error', { 'www-authenticate': 'Bearer' }],
      [new ForbiddenError('not yours'), 403, 'permission_error', {}],
      [new RateLimitedError('spent', 1_200), 429, 'rate_limit_error', { 'retry-after': '2' }],
      [new BusyError('full'), 429, 'overloaded_error', { 'retry-after': '1' }],
      [new UnavailableError('no replica'), 503, 'unavailable_error', { 'retry-after': '1' }],
      [new DeadlineExceededError('late'), 504, 'timeout_error', {}],
      [new CancelledError('gone'), 499, 'cancelled_error', {}],
      [new EngineFailedError('failed on two replicas'), 500, 'server_error', {}],
    ];
    for (const [err, status, type, headers] of cases) {
      const answer = toHttpError(err, 'req-1');
      assert.equal(answer.status, status, err.name);
      assert.deepEqual(answer.headers, headers, err.name);
      assert.deepEqual(answer.body, {
        error: { message: err.message, type, param: null, code: answer.code },
      });
    }
  });

  it('gives Retry-After at least 1 second, rounded up', () => {
    assert.equal(toHttpError(new RateLimitedError('x', 0), 'r').headers['retry-after'], '1');
    assert.equal(toHttpError(new RateLimitedError('x', 1), 'r').headers['retry-after'], '1');
    assert.equal(toHttpError(new RateLimitedError('x', 60_001), 'r').headers['retry-after'], '61');
  });

  it('keeps the status and headers of HTTP-level client mistakes, with the invalid_request code', () => {
    const answer = toHttpError(new HttpInputError(405, 'use POST', { allow: 'POST' }), 'r');
    assert.equal(answer.status, 405);
    assert.equal(answer.headers.allow, 'POST');
    assert.equal(answer.body.error.code, 'invalid_request');
    assert.equal(toHttpError(new HttpInputError(413, 'too big'), 'r').status, 413);
  });

  it('never shows internal detail to the client: a bug is a 500 naming only the request id', () => {
    for (const err of [
      new TypeError('x.y is undefined at /secret/path'),
      new InternalError('replica r1 ONNX failed'),
      'a string',
    ]) {
      const answer = toHttpError(err, 'req-9');
      assert.equal(answer.status, 500);
      assert.equal(answer.body.error.code, 'internal');
      assert.equal(answer.body.error.type, 'server_error');
      assert.doesNotMatch(answer.body.error.message, /secret|ONNX|string/);
      assert.match(answer.body.error.message, /req-9/);
    }
  });
});
