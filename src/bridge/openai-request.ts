/**
 * OpenAI request bodies → generate requests. This module only translates shapes (a prompt array
 * into one request per choice, content parts into strings, `stop: "x"` into `["x"]`) and refuses
 * what the cluster cannot do; every range and type rule of the parameters themselves is
 * `validateGenerateParams`, the one validation every entry point shares. Unknown fields are
 * ignored and JSON `null` counts as absent, as OpenAI clients send both.
 */
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import { ID_PATTERN, MODEL_VERSION_PATTERN } from '../cluster/subjects.ts';
import { validateGenerateParams, type UncheckedGenerateParams } from '../cluster/messages/params.ts';
import { readMetadata, type Metadata } from '../cluster/messages/capture.ts';
import { InvalidRequestError } from '../errors/errors.ts';
import {
  describeValue,
  invalidField,
  optionalField,
  readObject,
  readOptional,
  type WireObject,
} from '../validation/fields.ts';

/** Most prompts in one completions request: each becomes its own cluster request. */
export const MAX_PROMPTS_PER_REQUEST = 32;
/** Longest `user` field kept (it only goes to logs). */
export const USER_MAX_LENGTH = 256;
/** Separator of the text parts of one message when they are flattened (as vLLM joins them). */
export const CONTENT_PART_SEPARATOR = '\n';

/** Which OpenAI endpoint a request came to. */
export type ApiKind = 'completion' | 'chat';

/** An OpenAI request, translated. */
export interface ParsedGeneration {
  kind: ApiKind;
  /** The `model` field as the caller wrote it (echoed in responses). */
  model: string;
  /** One generate request per choice, in choice order; checked by validateGenerateParams. */
  requests: GenerateRequest[];
  stream: boolean;
  /** `stream_options.include_usage`: a usage chunk ends the stream. */
  includeUsage: boolean;
  /** OpenAI's end-user id, for logs. */
  user?: string;
  /**
   * OpenAI's `metadata` (at most 16 string pairs): sent with every generate request of the call
   * and recorded with its completion; never part of the response cache key.
   */
  metadata?: Metadata;
}

function unsupported(what: string): never {
  throw new InvalidRequestError(`${what} is not supported by this server`);
}

function present(o: WireObject, key: string): unknown {
  return optionalField(o, key);
}

function nonEmpty(value: unknown): boolean {
  if (value === undefined || value === false) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object' && value !== null) return Object.keys(value).length > 0;
  return true;
}

/** Known OpenAI features the cluster does not have: a 400 that says so, never a silent ignore. */
function rejectUnsupported(o: WireObject, kind: ApiKind): void {
  const n = present(o, 'n');
  if (n !== undefined && n !== 1) unsupported(`n = ${describeValue(n)} (one choice per prompt; n must be 1)`);
  const bestOf = present(o, 'best_of');
  if (bestOf !== undefined && bestOf !== 1) unsupported(`best_of = ${describeValue(bestOf)}`);
  const logprobs = present(o, 'logprobs');
  if (logprobs !== undefined && logprobs !== false) unsupported('logprobs');
  const topLogprobs = present(o, 'top_logprobs');
  if (topLogprobs !== undefined && topLogprobs !== 0) unsupported('top_logprobs');
  if (nonEmpty(present(o, 'logit_bias'))) unsupported('logit_bias');
  if (present(o, 'echo') === true) unsupported('echo');
  const suffix = present(o, 'suffix');
  if (suffix !== undefined && suffix !== '') unsupported('suffix');
  if (nonEmpty(present(o, 'tools'))) unsupported('tools');
  if (nonEmpty(present(o, 'functions'))) unsupported('functions');
  for (const key of ['tool_choice', 'function_call']) {
    const choice = present(o, key);
    if (choice !== undefined && choice !== 'none') unsupported(key);
  }
  if (present(o, 'audio') !== undefined) unsupported('audio output');
  const format = present(o, 'response_format');
  if (format !== undefined) {
    const type = readObject('response_format', format).type;
    if (type !== 'text') unsupported(`response_format type ${describeValue(type)} (only 'text')`);
  }
  if (kind === 'completion' && present(o, 'messages') !== undefined && present(o, 'prompt') === undefined) {
    throw new InvalidRequestError('/v1/completions takes a prompt; send messages to /v1/chat/completions');
  }
}

/** `tiny-gpt2` or `tiny-gpt2@1` (a pinned version). */
export function parseModel(value: unknown): { model: string; version?: string } {
  if (value === undefined) throw new InvalidRequestError('model is required, e.g. "tiny-gpt2"');
  const shape = 'a model id [A-Za-z0-9_-]{1,64}, optionally @version ([A-Za-z0-9._-]{1,64})';
  if (typeof value !== 'string') invalidField('model', shape, value);
  const at = value.indexOf('@');
  const model = at < 0 ? value : value.slice(0, at);
  const version = at < 0 ? undefined : value.slice(at + 1);
  if (!ID_PATTERN.test(model) || (version !== undefined && !MODEL_VERSION_PATTERN.test(version))) {
    invalidField('model', shape, value);
  }
  return version === undefined ? { model } : { model, version };
}

/** Re-throws an error of the shared validation under the name the caller used for the field. */
function renamed<T>(from: string, to: string, run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (!(err instanceof InvalidRequestError) || !err.message.startsWith(from)) throw err;
    const rest = err.message.slice(from.length);
    // Only the whole field name: `prompt` must not rename `prompt_token_ids`.
    if (!/^[ [.]/.test(rest)) throw err;
    throw new InvalidRequestError(to + rest, { cause: err });
  }
}

/** The sampling fields shared by both endpoints, unchecked, with the caller's spelling remembered. */
function samplingFields(o: WireObject): {
  fields: UncheckedGenerateParams;
  renames: Array<[string, string]>;
} {
  const renames: Array<[string, string]> = [];
  const maxTokens = present(o, 'max_tokens');
  const maxCompletionTokens = present(o, 'max_completion_tokens');
  if (maxTokens !== undefined && maxCompletionTokens !== undefined && maxTokens !== maxCompletionTokens) {
    throw new InvalidRequestError('give max_completion_tokens or max_tokens, not both with different values');
  }
  if (maxCompletionTokens !== undefined) renames.push(['max_tokens', 'max_completion_tokens']);
  let stop = present(o, 'stop');
  if (typeof stop === 'string') {
    stop = [stop];
    renames.push(['stop[0]', 'stop']);
  }
  const fields: UncheckedGenerateParams = {
    maxTokens: maxCompletionTokens ?? maxTokens,
    temperature: present(o, 'temperature'),
    topP: present(o, 'top_p'),
    topK: present(o, 'top_k'),
    presencePenalty: present(o, 'presence_penalty'),
    frequencyPenalty: present(o, 'frequency_penalty'),
    seed: present(o, 'seed'),
    stop,
    ignoreEos: present(o, 'ignore_eos'),
  };
  return { fields, renames };
}

function validated(
  model: { model: string; version?: string },
  unchecked: UncheckedGenerateParams,
  renames: Array<[string, string]>,
): GenerateRequest {
  let run = (): GenerateRequest => ({ ...model, ...validateGenerateParams(unchecked) });
  for (const [from, to] of renames) {
    const inner = run;
    run = () => renamed(from, to, inner);
  }
  return run();
}

function common(
  o: WireObject,
  kind: ApiKind,
): Omit<ParsedGeneration, 'requests'> & { ref: ReturnType<typeof parseModel> } {
  rejectUnsupported(o, kind);
  const model = present(o, 'model');
  const ref = parseModel(model);
  const stream = present(o, 'stream') ?? false;
  if (typeof stream !== 'boolean') invalidField('stream', 'a boolean', stream);
  const options = present(o, 'stream_options');
  const includeUsage =
    options === undefined ? false : optionalField(readObject('stream_options', options), 'include_usage');
  if (includeUsage !== undefined && typeof includeUsage !== 'boolean') {
    invalidField('stream_options.include_usage', 'a boolean', includeUsage);
  }
  const user = present(o, 'user');
  if (user !== undefined && (typeof user !== 'string' || user.length > USER_MAX_LENGTH)) {
    invalidField('user', `a string of at most ${USER_MAX_LENGTH} characters`, user);
  }
  const metadata = readOptional(o, 'metadata', readMetadata);
  const parsed: Omit<ParsedGeneration, 'requests'> & { ref: ReturnType<typeof parseModel> } = {
    kind,
    model: model as string,
    ref,
    stream,
    includeUsage: includeUsage === true,
  };
  if (user !== undefined) parsed.user = user;
  if (metadata !== undefined) parsed.metadata = metadata;
  return parsed;
}

/** The request with the call's metadata, which each of its generate requests carries. */
function withMetadata(request: GenerateRequest, metadata: Metadata | undefined): GenerateRequest {
  return metadata === undefined ? request : { ...request, metadata };
}

function isInt(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v);
}

/** The prompts of a completions request: strings, token-id arrays, or one of either. */
function promptsOf(value: unknown): Array<{ prompt: unknown } | { promptTokenIds: unknown }> {
  if (value === undefined) throw new InvalidRequestError('prompt is required');
  if (!Array.isArray(value)) return [{ prompt: value }];
  if (value.length === 0) throw new InvalidRequestError('prompt must not be empty');
  if (value.every(isInt)) return [{ promptTokenIds: value }];
  if (value.length > MAX_PROMPTS_PER_REQUEST) {
    throw new InvalidRequestError(
      `prompt must have at most ${MAX_PROMPTS_PER_REQUEST} entries, got ${value.length}`,
    );
  }
  if (value.every((p) => typeof p === 'string')) return value.map((prompt: string) => ({ prompt }));
  if (value.every((p) => Array.isArray(p))) return value.map((ids: unknown) => ({ promptTokenIds: ids }));
  throw new InvalidRequestError(
    'prompt must be a string, an array of strings, an array of token ids or an array of token-id arrays',
  );
}

/** Translates a `POST /v1/completions` body. Throws `InvalidRequestError` naming the field. */
export function parseCompletionRequest(body: WireObject): ParsedGeneration {
  const { ref, ...base } = common(body, 'completion');
  const { fields, renames } = samplingFields(body);
  const prompts = promptsOf(present(body, 'prompt'));
  const requests = prompts.map((p, i) => {
    const names: Array<[string, string]> =
      prompts.length > 1
        ? [...renames, ['prompt', `prompt[${i}]`], ['prompt_token_ids', `prompt[${i}]`]]
        : [...renames, ['prompt_token_ids', 'prompt']];
    return withMetadata(validated(ref, { ...fields, ...p }, names), base.metadata);
  });
  return { ...base, requests };
}

/** Flattens one message's content (a string, or text parts) into a string. */
function contentOf(field: string, role: unknown, value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined && role === 'assistant') return '';
  if (!Array.isArray(value)) invalidField(field, 'a string or an array of text parts', value);
  return value
    .map((part: unknown, j) => {
      const p = readObject(`${field}[${j}]`, part);
      if (p.type !== 'text') unsupported(`${field}[${j}].type ${describeValue(p.type)} (only text parts)`);
      if (typeof p.text !== 'string') invalidField(`${field}[${j}].text`, 'a string', p.text);
      return p.text;
    })
    .join(CONTENT_PART_SEPARATOR);
}

/** The messages of a chat request as `{role, content}` with content flattened to a string. */
function messagesOf(value: unknown): unknown {
  if (!Array.isArray(value)) return value; // the shared validation names what is wrong
  return value.map((m: unknown, i) => {
    const o = readObject(`messages[${i}]`, m);
    if (o.role === 'tool' || o.role === 'function') unsupported(`messages[${i}].role '${o.role}' (tools)`);
    if (nonEmpty(optionalField(o, 'tool_calls')) || optionalField(o, 'function_call') !== undefined) {
      unsupported(`messages[${i}] with tool calls`);
    }
    return {
      role: o.role,
      content: contentOf(`messages[${i}].content`, o.role, optionalField(o, 'content')),
    };
  });
}

/** Translates a `POST /v1/chat/completions` body. Throws `InvalidRequestError` naming the field. */
export function parseChatRequest(body: WireObject): ParsedGeneration {
  const { ref, ...base } = common(body, 'chat');
  const { fields, renames } = samplingFields(body);
  const messages = present(body, 'messages');
  if (messages === undefined) throw new InvalidRequestError('messages is required');
  const request = validated(ref, { ...fields, messages: messagesOf(messages) }, renames);
  return { ...base, requests: [withMetadata(request, base.metadata)] };
}
