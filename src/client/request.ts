/**
 * What the client settles about a request before its first send: the request checked by the
 * same rules the router's decoder applies (so bad input fails here, with the same message, and
 * costs no round trip), its request id, deadline and, for sampled requests, its seed.
 */
import { randomUUID } from 'node:crypto';
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import { REQUEST_ID_PATTERN } from '../cluster/messages/stream.ts';
import { ID_PATTERN, MODEL_VERSION_PATTERN } from '../cluster/subjects.ts';
import { isSampled, validateGenerateParams } from '../cluster/messages/params.ts';
import { randomSeed } from '../cluster/messages/params.ts';
import { readMetadata } from '../cluster/messages/capture.ts';
import { InvalidRequestError } from '../errors/errors.ts';
import { describeValue, readPattern } from '../validation/fields.ts';

/**
 * Checks `req` like `decodeGenerateRequest` does and returns a clean copy (unknown fields
 * dropped). A sampled request without a seed gets one here: the client then knows the seed
 * before any router could die, so a resend always continues the same random stream.
 * Throws {@link InvalidRequestError} naming the first bad field as the wire spells it.
 */
export function checkGenerateRequest(req: GenerateRequest): GenerateRequest {
  if (req === null || typeof req !== 'object') throw new InvalidRequestError('request must be an object');
  const model = readPattern('model', req.model, ID_PATTERN, '[A-Za-z0-9_-]{1,64}');
  const params = validateGenerateParams(req);
  const checked: GenerateRequest = { model, ...params };
  if (req.version !== undefined) {
    checked.version = readPattern('version', req.version, MODEL_VERSION_PATTERN, '[A-Za-z0-9._-]{1,64}');
  }
  if (req.metadata !== undefined) checked.metadata = readMetadata('metadata', req.metadata);
  if (isSampled(checked) && checked.seed === undefined) checked.seed = randomSeed();
  return checked;
}

/** A fresh request id: unguessable, so one caller cannot cancel or collide with another's request. */
export function newRequestId(): string {
  return randomUUID();
}

/** The caller's request id, checked, or a fresh one. */
export function checkRequestId(requestId: string | undefined): string {
  if (requestId === undefined) return newRequestId();
  if (typeof requestId !== 'string' || !REQUEST_ID_PATTERN.test(requestId)) {
    throw new InvalidRequestError(
      `requestId must be a string matching [A-Za-z0-9._:-]{1,128}, got ${describeValue(requestId)}`,
    );
  }
  return requestId;
}

/** Epoch ms after which nobody works on the request. */
export function deadlineFrom(timeoutMs: number, now = Date.now()): number {
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new InvalidRequestError(
      `timeoutMs must be a positive number of milliseconds, got ${describeValue(timeoutMs)}`,
    );
  }
  return Math.floor(now + timeoutMs);
}
