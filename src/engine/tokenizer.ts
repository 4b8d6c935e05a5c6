/**
 * Tokenizers come from transformers.js (v4), loaded from the model folder only: no hub access,
 * ever. The engine tokenizes prompts in a worker thread of its own (tokenizer-thread.ts): a
 * prompt at the size limit takes about half a second, too long for the actor's event loop.
 * Token → bytes for streaming is a table computed once (`token-bytes.ts`).
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { InvalidRequestError, StartupError } from '../errors/errors.ts';
import type { ChatMessage } from '../cluster/messages/params.ts';
import { tokenBytesTable } from './token-bytes.ts';

/** The tokenizer of one model: encode prompts, render chat templates, bytes of each token. */
export class ModelTokenizer {
  private constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    /** The exact bytes each token id adds to generated text. */
    readonly tokenBytes: Uint8Array[],
    /**
     * Most UTF-8 bytes of prompt text one token can stand for (the longest token or added
     * token), so a prompt of B bytes has at least ceil(B / maxTokenBytes) tokens; `Infinity`
     * when the tokenizer may drop or shrink input (a normalizer, a whitespace-splitting
     * pre-tokenizer, added tokens that strip), where no such bound holds.
     */
    readonly maxTokenBytes: number,
  ) {}

  /** Loads `tokenizer.json` / `tokenizer_config.json` from a local model folder. */
  static async load(folder: string): Promise<ModelTokenizer> {
    // Absolute, always: a relative path like `models/x` is also a valid hub id, and would be
    // looked up under transformers.js' own model folder instead.
    const modelDir = resolve(folder);
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    let tokenizer: PreTrainedTokenizer;
    let json: unknown;
    try {
      json = JSON.parse(await readFile(join(modelDir, 'tokenizer.json'), 'utf8'));
      // An absolute path is not a hub id, so transformers.js reads the folder as it is.
      tokenizer = await AutoTokenizer.from_pretrained(modelDir);
    } catch (err) {
      throw new StartupError(
        'model_corrupt',
        `cannot load the tokenizer of ${modelDir}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const tokenBytes = tokenBytesTable(json);
    return new ModelTokenizer(tokenizer, tokenBytes, maxTokenBytes(json, tokenBytes));
  }

  /** Token ids of a prompt, with the special tokens the tokenizer's post-processor adds. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /** Text of token ids (special tokens skipped). */
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids as number[], { skip_special_tokens: true });
  }

  /**
   * Renders chat messages with the model's chat template, ready for generation; with
   * `addGenerationPrompt` false, as a finished conversation (what a trainer scores).
   */
  applyChatTemplate(messages: ChatMessage[], addGenerationPrompt = true): string {
    if (!this.tokenizer.chat_template) {
      throw new InvalidRequestError('this model has no chat template: use a completion prompt instead');
    }
    const text: unknown = this.tokenizer.apply_chat_template(messages, {
      tokenize: false,
      add_generation_prompt: addGenerationPrompt,
    });
    return String(text);
  }
}

/** Pre-tokenizers that keep every input byte (byte-level BPE splits, never drops). */
const LOSSLESS_PRE_TOKENIZERS = new Set(['ByteLevel', 'Split', 'Digits', 'Punctuation']);

/** See {@link ModelTokenizer.maxTokenBytes}. */
function maxTokenBytes(json: unknown, tokenBytes: readonly Uint8Array[]): number {
  const root = json as Record<string, unknown>;
  if (root['normalizer'] !== null && root['normalizer'] !== undefined) return Infinity;
  const pre = root['pre_tokenizer'] as { type?: unknown; pretokenizers?: unknown } | null | undefined;
  const steps = pre?.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? pre.pretokenizers : [pre];
  for (const step of steps as ({ type?: unknown } | null | undefined)[]) {
    if (typeof step?.type !== 'string' || !LOSSLESS_PRE_TOKENIZERS.has(step.type)) return Infinity;
  }
  let max = 1;
  for (const bytes of tokenBytes) max = Math.max(max, bytes.length);
  const added = Array.isArray(root['added_tokens']) ? (root['added_tokens'] as unknown[]) : [];
  const utf8 = new TextEncoder();
  for (const token of added) {
    const t = token as { content?: unknown; lstrip?: unknown; rstrip?: unknown };
    if (t.lstrip === true || t.rstrip === true) return Infinity;
    if (typeof t.content === 'string') max = Math.max(max, utf8.encode(t.content).length);
  }
  return max;
}
