/**
 * The wire protocol's parameter schema: a generate request's parameters, their wire names and
 * bounds, and the one validation of them. It lives with the messages, not the engine, so the
 * bridge, the client and the router speak the protocol without importing the engine. Every entry point (the engine
 * API, the NATS decoder, the HTTP bridge) validates through `validateGenerateParams`, so bad input
 * is refused with the same message wherever it enters and never reaches a decode step. Messages
 * name fields as the wire and the OpenAI API spell them (`max_tokens`, `top_p`), since that is
 * what a caller wrote.
 */
import { getRandomValues } from 'node:crypto';
import { InvalidRequestError } from '../../errors/errors.ts';
import {
  invalidField,
  readInt,
  readIntArray,
  readNumber,
  readString,
  type NumberRule,
} from '../../validation/fields.ts';

/**
 * Default cap on generated tokens when a request gives no max_tokens (engines may be configured
 * otherwise; routers and bridges estimate with this one).
 */
export const DEFAULT_MAX_TOKENS_CAP = 256;

/** Smallest max_tokens of a request without resume token ids: it must be allowed one token. */
export const MAX_TOKENS_MIN = 1;
/** Protocol ceiling of max_tokens; the engine further caps it by the model's context. */
export const MAX_TOKENS_MAX = 1_048_576;
/** Temperature range (as OpenAI); 0 means greedy. */
export const TEMPERATURE_MAX = 2;
/** Presence / frequency penalty range is [-PENALTY_MAX, PENALTY_MAX] (as OpenAI). */
export const PENALTY_MAX = 2;
/** Largest seed: seeds must survive a JSON round trip through any language as exact integers. */
export const SEED_MAX = Number.MAX_SAFE_INTEGER;
/** Most stop sequences per request (as OpenAI). */
export const STOP_MAX_COUNT = 4;
/** Longest stop sequence in characters: matching cost grows with it on every token. */
export const STOP_MAX_LENGTH = 256;
/** Longest text prompt in characters: keeps a request well under NATS' default 1 MiB payload. */
export const PROMPT_MAX_CHARS = 262_144;
/** Most prompt (or resume) token ids in one request. */
export const PROMPT_MAX_TOKENS = 131_072;
/** Largest token id on the wire; the engine checks the model's real vocabulary. */
export const TOKEN_ID_MAX = 2_147_483_647;

/** Generation parameters, camelCase, shared by the engine, the wire format and the client. */
export interface GenerateParams {
  /** Prompt text; exactly one of prompt / promptTokenIds. */
  prompt?: string;
  /** Prompt as token ids. */
  promptTokenIds?: number[];
  /** Chat messages, rendered into the prompt with the model's chat template by the replica. */
  messages?: ChatMessage[];
  /**
   * Tokens already generated and delivered by an earlier attempt (exact resume): generation
   * continues after them, at sampling position `resumeTokenIds.length`.
   */
  resumeTokenIds?: number[];
  /**
   * New tokens to generate at most, after any resumed ones; 0 only with resume token ids (a
   * resume that had already reached its limit ends at once). @default rest of the context, capped
   */
  maxTokens?: number;
  /** 0 = greedy. @default 1 */
  temperature?: number;
  /** @default 1 (off) */
  topP?: number;
  /** 0 = off. @default 0 */
  topK?: number;
  /** @default 0 */
  presencePenalty?: number;
  /** @default 0 */
  frequencyPenalty?: number;
  /** Seed of the sampler; sampled requests without one get a random one. */
  seed?: number;
  /** Up to 4 strings; generation stops before the first one that completes in the output. */
  stop?: string[];
  /** Generate max_tokens even past end-of-sequence tokens (benchmarks; as vLLM's ignore_eos). */
  ignoreEos?: boolean;
}

/** A chat message (text content only; the HTTP bridge flattens OpenAI content parts). */
export interface ChatMessage {
  role: string;
  content: string;
}

/** Most chat messages per request. */
export const MESSAGES_MAX_COUNT = 1_024;
/** Longest chat role name. */
export const ROLE_MAX_LENGTH = 32;

/** Parameters as an untrusted caller may hold them: any value in any field. */
export type UncheckedGenerateParams = { readonly [K in keyof GenerateParams]?: unknown };

/** Wire (snake_case) name of each parameter: used in error messages and by the NATS codec. */
export const PARAM_WIRE_NAMES = {
  prompt: 'prompt',
  promptTokenIds: 'prompt_token_ids',
  messages: 'messages',
  resumeTokenIds: 'resume_token_ids',
  maxTokens: 'max_tokens',
  temperature: 'temperature',
  topP: 'top_p',
  topK: 'top_k',
  presencePenalty: 'presence_penalty',
  frequencyPenalty: 'frequency_penalty',
  seed: 'seed',
  stop: 'stop',
  ignoreEos: 'ignore_eos',
} as const satisfies Record<keyof GenerateParams, string>;

const TOKEN_ID: NumberRule = { min: 0, max: TOKEN_ID_MAX };
const PENALTY: NumberRule = { min: -PENALTY_MAX, max: PENALTY_MAX };
const n = PARAM_WIRE_NAMES;

/**
 * Checks types and ranges of every field (not the context length: that needs the tokenizer).
 * Returns the parameters with absent fields left out; throws `InvalidRequestError` naming the
 * first bad field, the rule and the value.
 */
export function validateGenerateParams(p: UncheckedGenerateParams): GenerateParams {
  if (p === null || typeof p !== 'object') throw new InvalidRequestError('request must be an object');
  const out: GenerateParams = {};
  if (p.prompt !== undefined) {
    if (typeof p.prompt === 'string' && p.prompt.length === 0) {
      throw new InvalidRequestError('prompt must not be empty');
    }
    out.prompt = readString(n.prompt, p.prompt, { minLength: 1, maxLength: PROMPT_MAX_CHARS });
  }
  if (p.promptTokenIds !== undefined) {
    if (Array.isArray(p.promptTokenIds) && p.promptTokenIds.length === 0) {
      throw new InvalidRequestError('prompt must not be empty');
    }
    out.promptTokenIds = readIntArray(n.promptTokenIds, p.promptTokenIds, TOKEN_ID, {
      min: 1,
      max: PROMPT_MAX_TOKENS,
    });
  }
  if (p.messages !== undefined) out.messages = readMessages(p.messages);
  const given = [out.prompt, out.promptTokenIds, out.messages].filter((v) => v !== undefined).length;
  if (given !== 1) {
    throw new InvalidRequestError(
      given === 0
        ? 'a prompt is required: give exactly one of prompt, prompt_token_ids and messages'
        : 'give exactly one of prompt, prompt_token_ids and messages, not several',
    );
  }
  if (p.resumeTokenIds !== undefined) {
    out.resumeTokenIds = readIntArray(n.resumeTokenIds, p.resumeTokenIds, TOKEN_ID, {
      min: 0,
      max: PROMPT_MAX_TOKENS,
    });
  }
  if (p.maxTokens !== undefined) {
    // A resume may already have used up max_tokens (its end was lost): 0 then asks for nothing
    // more, and the request ends at once with `length`. A fresh request must allow a token.
    const min = (out.resumeTokenIds?.length ?? 0) > 0 ? 0 : MAX_TOKENS_MIN;
    out.maxTokens = readInt(n.maxTokens, p.maxTokens, { min, max: MAX_TOKENS_MAX });
  }
  if (p.temperature !== undefined) {
    out.temperature = readNumber(n.temperature, p.temperature, { min: 0, max: TEMPERATURE_MAX });
  }
  if (p.topP !== undefined) out.topP = readNumber(n.topP, p.topP, { min: 0, max: 1, exclusiveMin: true });
  if (p.topK !== undefined) out.topK = readInt(n.topK, p.topK, { min: 0, max: Infinity });
  if (p.presencePenalty !== undefined) {
    out.presencePenalty = readNumber(n.presencePenalty, p.presencePenalty, PENALTY);
  }
  if (p.frequencyPenalty !== undefined) {
    out.frequencyPenalty = readNumber(n.frequencyPenalty, p.frequencyPenalty, PENALTY);
  }
  if (p.seed !== undefined) out.seed = readInt(n.seed, p.seed, { min: 0, max: SEED_MAX });
  if (p.stop !== undefined) out.stop = readStop(p.stop);
  if (p.ignoreEos !== undefined) {
    if (typeof p.ignoreEos !== 'boolean') invalidField(n.ignoreEos, 'a boolean', p.ignoreEos);
    out.ignoreEos = p.ignoreEos;
  }
  return out;
}

function readMessages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value)) invalidField(n.messages, 'an array of {role, content} objects', value);
  if (value.length === 0) throw new InvalidRequestError('messages must not be empty');
  if (value.length > MESSAGES_MAX_COUNT) {
    throw new InvalidRequestError(
      `messages must have at most ${MESSAGES_MAX_COUNT} entries, got ${value.length}`,
    );
  }
  return value.map((m: unknown, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m))
      invalidField(`messages[${i}]`, 'an object', m);
    const o = m as Record<string, unknown>;
    return {
      role: readString(`messages[${i}].role`, o.role, { minLength: 1, maxLength: ROLE_MAX_LENGTH }),
      content: readString(`messages[${i}].content`, o.content, { maxLength: PROMPT_MAX_CHARS }),
    };
  });
}

function readStop(value: unknown): string[] {
  if (!Array.isArray(value)) invalidField(n.stop, 'an array of strings', value);
  if (value.length > STOP_MAX_COUNT) {
    throw new InvalidRequestError(`stop must have at most ${STOP_MAX_COUNT} entries, got ${value.length}`);
  }
  return value.map((s: unknown, i) =>
    readString(`stop[${i}]`, s, { minLength: 1, maxLength: STOP_MAX_LENGTH }),
  );
}

/** Greedy requests need no seed; every sampled one has one so that it can be resumed exactly. */
export function isSampled(p: GenerateParams): boolean {
  return (p.temperature ?? 1) > 0;
}

const TWO_POW_32 = 2 ** 32;

/** A uniformly random seed in [0, 2^53), for a sampled request that brings none. */
export function randomSeed(): number {
  const words = getRandomValues(new Uint32Array(2));
  return (words[0]! & 0x1fffff) * TWO_POW_32 + words[1]!;
}
