/**
 * The generate request: what a client sends to the front door and a router forwards to a
 * replica. Field names on the wire are snake_case, like the OpenAI parameters they mirror, so an
 * error such as "max_tokens must be an integer >= 1, got -3" names the field the caller wrote,
 * whether it came over NATS or through the HTTP bridge. The parameter rules themselves live in
 * `src/engine/request.ts`, once.
 */
import { PARAM_WIRE_NAMES, validateGenerateParams, type GenerateParams } from './params.ts';
import { readMetadata, type Metadata } from './capture.ts';
import { ID_PATTERN, MODEL_VERSION_PATTERN } from '../subjects.ts';
import {
  encodeObject,
  optionalField,
  parseObject,
  readOptional,
  readPattern,
} from '../../validation/fields.ts';

/** A generate request as every actor handles it (decoded from the snake_case wire form). */
export interface GenerateRequest extends GenerateParams {
  /** Model id, e.g. `tiny-gpt2`. */
  model: string;
  /** Pin one model version; absent lets the router choose (e.g. during a canary rollout). */
  version?: string;
  /**
   * Caller metadata, at most 16 string pairs (as OpenAI's `metadata`): recorded with the request's
   * completion event; routers do not forward it to replicas.
   */
  metadata?: Metadata;
}

/** Wire name of each GenerateRequest field (the one mapping both directions use). */
const WIRE_NAMES = {
  model: 'model',
  version: 'version',
  metadata: 'metadata',
  ...PARAM_WIRE_NAMES,
} as const satisfies Record<keyof GenerateRequest, string>;

/** The one decoder of generate requests; throws {@link InvalidRequestError} naming the bad field. */
export function decodeGenerateRequest(data: Uint8Array | string): GenerateRequest {
  const o = parseObject(data, 'generate request');
  const model = readPattern('model', o.model, ID_PATTERN, '[A-Za-z0-9_-]{1,64}');
  const version = readOptional(o, 'version', (f, v) =>
    readPattern(f, v, MODEL_VERSION_PATTERN, '[A-Za-z0-9._-]{1,64}'),
  );
  const metadata = readOptional(o, 'metadata', readMetadata);
  const unchecked: Record<string, unknown> = {};
  for (const [key, wireName] of Object.entries(PARAM_WIRE_NAMES)) {
    unchecked[key] = optionalField(o, wireName);
  }
  const params = validateGenerateParams(unchecked);
  return {
    model,
    ...(version !== undefined ? { version } : {}),
    ...(metadata !== undefined ? { metadata } : {}),
    ...params,
  };
}

/** Serialises a generate request to its wire form (no validation: the receiver decodes it). */
export function encodeGenerateRequest(req: GenerateRequest): Uint8Array {
  const wire: Record<string, unknown> = {};
  for (const [key, wireName] of Object.entries(WIRE_NAMES)) {
    wire[wireName] = req[key as keyof GenerateRequest];
  }
  return encodeObject(wire);
}
