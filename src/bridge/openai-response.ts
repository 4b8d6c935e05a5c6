/**
 * OpenAI response shapes, built in one place so that every route and the stream agree on them:
 * `text_completion` and `chat.completion` bodies (usage always present), their streaming chunks
 * (`usage: null` on every chunk when a usage chunk was asked for, as OpenAI does), and the final
 * usage chunk with `choices: []`.
 */
import type { Usage } from '../cluster/messages/stream.ts';
import type { ApiKind } from './openai-request.ts';

/** `finish_reason` as OpenAI spells it. */
export type OpenAiFinishReason = 'stop' | 'length';

/** What every body and chunk of one response shares. */
export interface ResponseMeta {
  kind: ApiKind;
  /** `cmpl-…` or `chatcmpl-…`. */
  id: string;
  /** Unix seconds. */
  created: number;
  /** The model field as the caller wrote it. */
  model: string;
  /** The model id the cluster requests name (the caller's `model` without an `@version`). */
  modelId: string;
  /**
   * `<model id>@<version>` expected to serve the request (the pinned version, or the only one
   * live), else null; a choice's chunks carry the version that serves it once the cluster says
   * ({@link servedMeta}).
   */
  fingerprint: string | null;
  /** Streams: the caller asked for a usage chunk. */
  includeUsage: boolean;
}

/** One finished choice. */
export interface ChoiceResult {
  text: string;
  finishReason: OpenAiFinishReason;
  usage: Usage;
}

/** OpenAI's usage object. */
export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** OpenAI's response id prefix of each kind. */
const RESPONSE_ID_PREFIXES: Readonly<Record<ApiKind, string>> = { chat: 'chatcmpl-', completion: 'cmpl-' };

/**
 * The response id: the cluster request id (`<key id>:<caller's id>`, `tenancy.ts`) under OpenAI's
 * prefix, so one id finds the request in every log and tells whose request it was.
 */
export function responseId(kind: ApiKind, clusterRequestId: string): string {
  return `${RESPONSE_ID_PREFIXES[kind]}${clusterRequestId}`;
}

/**
 * The cluster request id a response id names, or undefined when `id` is not one (no OpenAI
 * prefix, or no tenant scope after it: cluster ids always have a `:`).
 */
export function requestIdOfResponse(id: string): string | undefined {
  for (const prefix of Object.values(RESPONSE_ID_PREFIXES)) {
    if (!id.startsWith(prefix)) continue;
    const rest = id.slice(prefix.length);
    return rest.includes(':') ? rest : undefined;
  }
  return undefined;
}

/** Usage summed over choices (one cluster request each). */
export function totalUsage(usages: readonly Usage[]): OpenAiUsage {
  const prompt = usages.reduce((sum, u) => sum + u.promptTokens, 0);
  const completion = usages.reduce((sum, u) => sum + u.completionTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/**
 * The `system_fingerprint` of an answer served by `version` of model `modelId`:
 * `<model id>@<version>`, as a pinned request names it, so that a client can tell which version
 * made the tokens (versions differ in output; during a hot swap both serve).
 */
export function versionFingerprint(modelId: string, version: string): string {
  return `${modelId}@${version}`;
}

/**
 * `meta` as the chunks and body of a choice served by `version` carry it: the fingerprint names
 * the version the cluster pinned the choice to (the router's ack), not the bridge's expectation,
 * which during a hot swap is unknown (null) or already stale. Unchanged while `version` is
 * unknown (a cache replay keeps the version its key was made for).
 */
export function servedMeta(meta: ResponseMeta, version: string | undefined): ResponseMeta {
  if (version === undefined) return meta;
  return { ...meta, fingerprint: versionFingerprint(meta.modelId, version) };
}

function head(meta: ResponseMeta, object: string): Record<string, unknown> {
  return {
    id: meta.id,
    object,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
  };
}

/** A complete (non-streaming) response body. */
export function responseBody(meta: ResponseMeta, choices: readonly ChoiceResult[]): Record<string, unknown> {
  const usage = totalUsage(choices.map((c) => c.usage));
  if (meta.kind === 'chat') {
    return {
      ...head(meta, 'chat.completion'),
      choices: choices.map((c, index) => ({
        index,
        message: { role: 'assistant', content: c.text, refusal: null },
        logprobs: null,
        finish_reason: c.finishReason,
      })),
      usage,
    };
  }
  return {
    ...head(meta, 'text_completion'),
    choices: choices.map((c, index) => ({
      index,
      text: c.text,
      logprobs: null,
      finish_reason: c.finishReason,
    })),
    usage,
  };
}

/**
 * One streaming chunk of choice `index`: a text delta, or (with `finishReason`) the choice's
 * last chunk. `first` marks a chat choice's opening chunk, which carries `role: 'assistant'`.
 */
export function streamChunk(
  meta: ResponseMeta,
  index: number,
  text: string,
  finishReason: OpenAiFinishReason | null,
  first = false,
): Record<string, unknown> {
  const chunk =
    meta.kind === 'chat'
      ? {
          ...head(meta, 'chat.completion.chunk'),
          choices: [
            {
              index,
              delta:
                finishReason !== null && text === ''
                  ? {}
                  : first
                    ? { role: 'assistant', content: text }
                    : { content: text },
              logprobs: null,
              finish_reason: finishReason,
            },
          ],
        }
      : {
          ...head(meta, 'text_completion'),
          choices: [{ index, text, logprobs: null, finish_reason: finishReason }],
        };
  return meta.includeUsage ? { ...chunk, usage: null } : chunk;
}

/** The stream's usage chunk (only when `stream_options.include_usage` was set). */
export function usageChunk(meta: ResponseMeta, usages: readonly Usage[]): Record<string, unknown> {
  const object = meta.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  return { ...head(meta, object), choices: [], usage: totalUsage(usages) };
}
