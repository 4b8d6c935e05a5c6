/**
 * A generate request as the engine takes it, and the one validation of its parameters. Every
 * entry point (engine API, NATS decoders, HTTP bridge) validates through `validateGenerateParams`,
 * so bad input is refused with the same message wherever it enters and never reaches a step.
 */
import { InvalidRequestError } from '../errors/errors.ts';
import type { SamplingParams } from './sampling.ts';

/** Most stop sequences per request (as OpenAI). */
export const MAX_STOP_SEQUENCES = 4;
/** Longest stop sequence in characters. */
export const MAX_STOP_LENGTH = 256;
/** Temperature range (as OpenAI). */
export const MAX_TEMPERATURE = 2;
/** Presence / frequency penalty range is [-MAX_PENALTY, MAX_PENALTY] (as OpenAI). */
export const MAX_PENALTY = 2;
/** Largest accepted seed: seeds are integers that a double holds exactly. */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

/** Generation parameters, camelCase, shared by the engine, the wire format and the client. */
export interface GenerateParams {
  /** Prompt text; exactly one of prompt / promptTokenIds. */
  prompt?: string;
  /** Prompt as token ids. */
  promptTokenIds?: number[];
  /** Tokens already generated and delivered (exact resume): generation continues after them. */
  resumeTokenIds?: number[];
  /** New tokens to generate at most (after any resumed ones). @default rest of the context, capped */
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
  /** Up to 4 strings; generation stops before the first one that appears in the output. */
  stop?: string[];
  /** Generate max_tokens even past end-of-sequence tokens (benchmarks; as vLLM's ignore_eos). */
  ignoreEos?: boolean;
}

function isNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function checkRange(name: string, v: unknown, lo: number, hi: number, loOpen = false): void {
  if (v === undefined) return;
  const inRange = isNumber(v) && (loOpen ? v > lo : v >= lo) && v <= hi;
  if (!inRange) {
    const range = `${loOpen ? '(' : '['}${lo}, ${hi}]`;
    throw new InvalidRequestError(`${name} must be a number in ${range}, got ${describe(v)}`);
  }
}

function checkInt(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (v === undefined) return;
  if (!isNumber(v) || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidRequestError(
      `${name} must be an integer >= ${min}${max < Number.MAX_SAFE_INTEGER ? ` and <= ${max}` : ''}, got ${describe(v)}`,
    );
  }
}

function checkTokenIds(name: string, v: unknown): void {
  if (v === undefined) return;
  if (!Array.isArray(v) || v.some((t) => !isNumber(t) || !Number.isInteger(t) || t < 0)) {
    throw new InvalidRequestError(`${name} must be an array of non-negative integer token ids`);
  }
}

/** A short, safe rendering of a bad value for an error message. */
export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : typeof v;
}

/**
 * Checks types and ranges of every field (not the context length: that needs the tokenizer).
 * Throws `InvalidRequestError` naming the field, the rule and the value.
 */
export function validateGenerateParams(p: GenerateParams): void {
  if (p === null || typeof p !== 'object') throw new InvalidRequestError('request must be an object');
  const hasText = p.prompt !== undefined;
  const hasIds = p.promptTokenIds !== undefined;
  if (hasText === hasIds) {
    throw new InvalidRequestError('exactly one of prompt and promptTokenIds must be given');
  }
  if (hasText && typeof p.prompt !== 'string') {
    throw new InvalidRequestError(`prompt must be a string, got ${describe(p.prompt)}`);
  }
  if (p.prompt === '' || (Array.isArray(p.promptTokenIds) && p.promptTokenIds.length === 0)) {
    throw new InvalidRequestError('prompt must not be empty');
  }
  checkTokenIds('promptTokenIds', p.promptTokenIds);
  checkTokenIds('resumeTokenIds', p.resumeTokenIds);
  checkInt('max_tokens', p.maxTokens, 1);
  checkRange('temperature', p.temperature, 0, MAX_TEMPERATURE);
  checkRange('top_p', p.topP, 0, 1, true);
  checkInt('top_k', p.topK, 0);
  checkRange('presence_penalty', p.presencePenalty, -MAX_PENALTY, MAX_PENALTY);
  checkRange('frequency_penalty', p.frequencyPenalty, -MAX_PENALTY, MAX_PENALTY);
  checkInt('seed', p.seed, 0, MAX_SEED);
  if (p.ignoreEos !== undefined && typeof p.ignoreEos !== 'boolean') {
    throw new InvalidRequestError(`ignore_eos must be a boolean, got ${describe(p.ignoreEos)}`);
  }
  if (p.stop !== undefined) {
    if (!Array.isArray(p.stop) || p.stop.some((s) => typeof s !== 'string')) {
      throw new InvalidRequestError('stop must be an array of strings');
    }
    if (p.stop.length > MAX_STOP_SEQUENCES) {
      throw new InvalidRequestError(
        `stop may hold at most ${MAX_STOP_SEQUENCES} sequences, got ${p.stop.length}`,
      );
    }
    if (p.stop.some((s) => s.length === 0 || s.length > MAX_STOP_LENGTH)) {
      throw new InvalidRequestError(`each stop sequence must be 1 to ${MAX_STOP_LENGTH} characters`);
    }
  }
}

/** Sampling parameters with defaults filled in; `seed` must already be settled. */
export function samplingOf(p: GenerateParams, seed: number): SamplingParams {
  return {
    temperature: p.temperature ?? 1,
    topK: p.topK ?? 0,
    topP: p.topP ?? 1,
    presencePenalty: p.presencePenalty ?? 0,
    frequencyPenalty: p.frequencyPenalty ?? 0,
    seed,
  };
}

/** Greedy requests need no seed; every sampled one has one so that it can be resumed exactly. */
export function isSampled(p: GenerateParams): boolean {
  return (p.temperature ?? 1) > 0;
}
