/**
 * The engine's admission checks, as pure functions of the model's limits and a request: what is
 * refused before the model's worker ever sees a request (DESIGN.md invariants 6 and 8). The
 * engine calls them on the main thread, before tokenizing where the size alone decides, and
 * once the tokens are back for the rest.
 */
import type { GenerateParams } from '../cluster/messages/params.ts';
import { InvalidRequestError } from '../errors/errors.ts';
import type { ModelInfo } from './model-info.ts';
import { TextStream } from './text-stream.ts';
import type { EngineEnd } from './types.ts';

/** What admission needs to know of the model and the engine. */
export interface AdmissionLimits {
  contextLength: number;
  tokenBudget: number;
  maxTokensCap: number;
  eos: ReadonlySet<number>;
  tokenBytes: readonly Uint8Array[];
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/**
 * The end of a resume that had already ended before this attempt, or undefined: its tokens are
 * replayed through the request's stop sequences exactly as the scheduler would replay them
 * (which would throw on a stop already completed: the query of death this check keeps away).
 * Bounded by the context length: requests longer than that are refused first.
 */
export function resumeEnded(
  limits: AdmissionLimits,
  params: GenerateParams,
  promptTokens: number,
  resumeIds: readonly number[],
): EngineEnd | undefined {
  if (resumeIds.length === 0) return undefined;
  const usage = { promptTokens, completionTokens: 0 };
  const ignoreEos = params.ignoreEos ?? false;
  const text = new TextStream(params.stop ?? []);
  for (const id of resumeIds) {
    if (!ignoreEos && limits.eos.has(id)) return { finishReason: 'stop', usage };
    if (text.push(limits.tokenBytes[id] ?? EMPTY).stopped) return { finishReason: 'stop', usage };
  }
  const room = limits.contextLength - promptTokens - resumeIds.length;
  if (params.maxTokens === 0 || (params.maxTokens === undefined && room <= 0)) {
    return { finishReason: 'length', usage };
  }
  return undefined;
}

/** max_tokens, or the default that fits; throws when the request cannot fit the context or budget. */
export function maxTokensOf(
  limits: AdmissionLimits,
  params: GenerateParams,
  promptTokens: number,
  resumed: number,
): number {
  const { contextLength } = limits;
  const used = promptTokens + resumed;
  const room = contextLength - used;
  const maxTokens = params.maxTokens ?? Math.min(room, limits.maxTokensCap);
  if (room < 1 || used + maxTokens > contextLength) {
    throw new InvalidRequestError(
      `this model's maximum context length is ${contextLength} tokens, but the request needs ` +
        `${used + Math.max(maxTokens, 1)} (${promptTokens} in the prompt, ${resumed} resumed, ` +
        `${Math.max(maxTokens, 1)} to generate); shorten the prompt or lower max_tokens`,
    );
  }
  if (used + maxTokens > limits.tokenBudget) {
    throw new InvalidRequestError(
      `the request needs ${used + maxTokens} tokens of KV budget but this engine's token budget is ` +
        `${limits.tokenBudget}; lower max_tokens`,
    );
  }
  return maxTokens;
}

/** Throws `invalid_request` naming the first id outside the model's vocabulary. */
export function checkVocabulary(info: Pick<ModelInfo, 'vocabSize'>, ids: readonly number[]): void {
  const { vocabSize } = info;
  for (const id of ids) {
    if (id >= vocabSize)
      throw new InvalidRequestError(`token id ${id} is outside the vocabulary (size ${vocabSize})`);
  }
}

/**
 * Refuses a request that cannot fit the context whatever its tokens: a text prompt of B bytes
 * has at least ceil(B / maxTokenBytes) tokens. Spares the tokenizer thread half a second of
 * work on a prompt that is refused anyway. (Chat messages are left to the real count: a
 * template need not keep their text whole.)
 */
export function checkSizeAlone(
  info: Pick<ModelInfo, 'contextLength'>,
  maxTokenBytes: number,
  params: GenerateParams,
  resumed: number,
): void {
  const { contextLength } = info;
  let prompt: number;
  let exact = true;
  if (params.promptTokenIds) prompt = params.promptTokenIds.length;
  else if (params.prompt !== undefined) {
    const bytes = utf8.encode(params.prompt).length;
    prompt = Math.max(1, Math.ceil(bytes / maxTokenBytes));
    exact = false;
  } else return;
  const generate = params.maxTokens ?? (resumed > 0 ? 0 : 1);
  const need = prompt + resumed + generate;
  if (need <= contextLength) return;
  const least = exact ? '' : 'at least ';
  throw new InvalidRequestError(
    `this model's maximum context length is ${contextLength} tokens, but the request needs ` +
      `${least}${need} (${least}${prompt} in the prompt, ${resumed} resumed, ${generate} to generate); ` +
      `shorten the prompt or lower max_tokens`,
  );
}
