/**
 * The generate request: what a client sends to the front door and a router forwards to a
 * replica. Field names on the wire are snake_case, like the OpenAI parameters they mirror, so an
 * error such as "max_tokens must be an integer >= 1, got -3" names the field the caller wrote,
 * whether it came over NATS or through the HTTP bridge.
 */
import { InvalidRequestError } from '../../errors/errors.ts';
import { ID_PATTERN, MODEL_VERSION_PATTERN } from '../subjects.ts';
import {
  encodeObject,
  invalidField,
  optionalField,
  parseObject,
  readInt,
  readIntArray,
  readNumber,
  readOptional,
  readPattern,
  readString,
  type NumberRule,
} from './fields.ts';

/** Smallest max_tokens: a request must be allowed at least one token. */
export const MAX_TOKENS_MIN = 1;
/** Protocol ceiling of max_tokens; the engine further caps it by the model's context. */
export const MAX_TOKENS_MAX = 1_048_576;
/** Sampling temperature range; 0 means greedy decoding. */
export const TEMPERATURE_MIN = 0;
/** Upper bound of temperature, as OpenAI accepts. */
export const TEMPERATURE_MAX = 2;
/** Upper bound of top_p (inclusive; 1 disables nucleus sampling). Its lower bound 0 is exclusive. */
export const TOP_P_MAX = 1;
/** Smallest top_k; 0 disables top-k filtering. */
export const TOP_K_MIN = 0;
/** Lower bound of presence_penalty and frequency_penalty, as OpenAI accepts. */
export const PENALTY_MIN = -2;
/** Upper bound of presence_penalty and frequency_penalty. */
export const PENALTY_MAX = 2;
/** Largest seed: seeds must survive a JSON round trip through any language as an exact integer. */
export const SEED_MAX = Number.MAX_SAFE_INTEGER;
/** Most stop sequences per request, as OpenAI accepts. */
export const STOP_MAX_COUNT = 4;
/** Longest stop sequence in characters: matching cost grows with it on every token. */
export const STOP_MAX_LENGTH = 256;
/** Longest text prompt in characters: keeps a request well under NATS' default 1 MiB payload. */
export const PROMPT_MAX_CHARS = 262_144;
/** Most prompt (or resume) token ids in one request. */
export const PROMPT_MAX_TOKENS = 131_072;
/** Largest token id: ids travel as int32/int64 tensors; the engine checks the real vocabulary. */
export const TOKEN_ID_MAX = 2_147_483_647;

/** The sampling and length parameters, checked by {@link validateGenerateParams}. */
export interface GenerateParams {
  /** Most tokens to generate, counting tokens already delivered before a resume. */
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Sampling seed; with the same seed, prompt and parameters a replica samples the same tokens. */
  seed?: number;
  stop?: string[];
}

/** A generate request as every actor handles it (decoded from the snake_case wire form). */
export interface GenerateRequest extends GenerateParams {
  /** Model id, e.g. `tiny-gpt2`. */
  model: string;
  /** Pin one model version; absent lets the router choose (e.g. during a canary rollout). */
  version?: string;
  /** Text prompt; exactly one of prompt and promptTokenIds is given. */
  prompt?: string;
  /** Pre-tokenised prompt. */
  promptTokenIds?: number[];
  /**
   * Tokens already generated and delivered to the client by an earlier attempt: the replica
   * continues after them, so a failover neither repeats nor skips a token.
   */
  resumeTokenIds?: number[];
}

/** Wire name of each GenerateRequest field (the one mapping both directions use). */
const WIRE_NAMES = {
  model: 'model',
  version: 'version',
  prompt: 'prompt',
  promptTokenIds: 'prompt_token_ids',
  resumeTokenIds: 'resume_token_ids',
  maxTokens: 'max_tokens',
  temperature: 'temperature',
  topP: 'top_p',
  topK: 'top_k',
  presencePenalty: 'presence_penalty',
  frequencyPenalty: 'frequency_penalty',
  seed: 'seed',
  stop: 'stop',
} as const satisfies Record<keyof GenerateRequest, string>;

const TOKEN_ID: NumberRule = { min: 0, max: TOKEN_ID_MAX };
const PENALTY: NumberRule = { min: PENALTY_MIN, max: PENALTY_MAX };

/** Parameters as an untrusted caller may hold them: any value in any field. */
export type UncheckedGenerateParams = { readonly [K in keyof GenerateParams]?: unknown };

/**
 * The one set of range rules for sampling parameters, shared by the message decoder, the bridge
 * and the engine so that no two layers disagree about what is valid. Returns the parameters with
 * absent fields left out; throws {@link InvalidRequestError} naming the first bad field.
 */
export function validateGenerateParams(p: UncheckedGenerateParams): GenerateParams {
  const out: GenerateParams = {};
  const n = WIRE_NAMES;
  if (p.maxTokens !== undefined) {
    out.maxTokens = readInt(n.maxTokens, p.maxTokens, { min: MAX_TOKENS_MIN, max: MAX_TOKENS_MAX });
  }
  if (p.temperature !== undefined) {
    out.temperature = readNumber(n.temperature, p.temperature, {
      min: TEMPERATURE_MIN,
      max: TEMPERATURE_MAX,
    });
  }
  if (p.topP !== undefined) {
    out.topP = readNumber(n.topP, p.topP, { min: 0, max: TOP_P_MAX, exclusiveMin: true });
  }
  if (p.topK !== undefined) out.topK = readInt(n.topK, p.topK, { min: TOP_K_MIN, max: Infinity });
  if (p.presencePenalty !== undefined) {
    out.presencePenalty = readNumber(n.presencePenalty, p.presencePenalty, PENALTY);
  }
  if (p.frequencyPenalty !== undefined) {
    out.frequencyPenalty = readNumber(n.frequencyPenalty, p.frequencyPenalty, PENALTY);
  }
  if (p.seed !== undefined) out.seed = readInt(n.seed, p.seed, { min: 0, max: SEED_MAX });
  if (p.stop !== undefined) out.stop = readStop(p.stop);
  return out;
}

function readStop(value: unknown): string[] {
  if (!Array.isArray(value)) invalidField('stop', 'an array of strings', value);
  if (value.length > STOP_MAX_COUNT) {
    throw new InvalidRequestError(`stop must have at most ${STOP_MAX_COUNT} entries, got ${value.length}`);
  }
  return value.map((s: unknown, i) =>
    readString(`stop[${i}]`, s, { minLength: 1, maxLength: STOP_MAX_LENGTH }),
  );
}

/** The one decoder of generate requests; throws {@link InvalidRequestError} naming the bad field. */
export function decodeGenerateRequest(data: Uint8Array | string): GenerateRequest {
  const o = parseObject(data, 'generate request');
  const n = WIRE_NAMES;
  const model = readPattern(n.model, o[n.model], ID_PATTERN, '[A-Za-z0-9_-]{1,64}');
  const version = readOptional(o, n.version, (f, v) =>
    readPattern(f, v, MODEL_VERSION_PATTERN, '[A-Za-z0-9._-]{1,64}'),
  );
  const prompt = readOptional(o, n.prompt, (f, v) =>
    readString(f, v, { minLength: 1, maxLength: PROMPT_MAX_CHARS }),
  );
  const promptTokenIds = readOptional(o, n.promptTokenIds, (f, v) =>
    readIntArray(f, v, TOKEN_ID, { min: 1, max: PROMPT_MAX_TOKENS }),
  );
  if ((prompt === undefined) === (promptTokenIds === undefined)) {
    throw new InvalidRequestError(
      prompt === undefined
        ? 'generate request needs a prompt: give exactly one of prompt and prompt_token_ids'
        : 'give exactly one of prompt and prompt_token_ids, not both',
    );
  }
  const resumeTokenIds = readOptional(o, n.resumeTokenIds, (f, v) =>
    readIntArray(f, v, TOKEN_ID, { min: 0, max: MAX_TOKENS_MAX }),
  );
  const params = validateGenerateParams({
    maxTokens: optionalField(o, n.maxTokens),
    temperature: optionalField(o, n.temperature),
    topP: optionalField(o, n.topP),
    topK: optionalField(o, n.topK),
    presencePenalty: optionalField(o, n.presencePenalty),
    frequencyPenalty: optionalField(o, n.frequencyPenalty),
    seed: optionalField(o, n.seed),
    stop: optionalField(o, n.stop),
  });
  if (
    resumeTokenIds !== undefined &&
    params.maxTokens !== undefined &&
    resumeTokenIds.length >= params.maxTokens
  ) {
    throw new InvalidRequestError(
      `resume_token_ids must have fewer entries than max_tokens (${params.maxTokens}), got ${resumeTokenIds.length}`,
    );
  }
  return dropUndefined({ model, version, prompt, promptTokenIds, resumeTokenIds, ...params });
}

/** Serialises a generate request to its wire form (no validation: the receiver decodes it). */
export function encodeGenerateRequest(req: GenerateRequest): Uint8Array {
  const wire: Record<string, unknown> = {};
  for (const [key, wireName] of Object.entries(WIRE_NAMES)) {
    wire[wireName] = req[key as keyof GenerateRequest];
  }
  return encodeObject(wire);
}

function dropUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) {
    if (value[key] === undefined) delete value[key];
  }
  return value;
}
