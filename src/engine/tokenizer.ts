/**
 * Tokenizers come from transformers.js (v4), loaded from the model folder only: no hub access,
 * ever. The engine tokenizes prompts on the main thread (cheap, and it lets admission control
 * answer at once); token → bytes for streaming is a table computed once (`token-bytes.ts`).
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { InvalidRequestError, StartupError } from '../errors/errors.ts';
import type { ChatMessage } from './request.ts';
import { tokenBytesTable } from './token-bytes.ts';

/** The tokenizer of one model: encode prompts, render chat templates, bytes of each token. */
export class ModelTokenizer {
  private constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    /** The exact bytes each token id adds to generated text. */
    readonly tokenBytes: Uint8Array[],
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
    return new ModelTokenizer(tokenizer, tokenBytesTable(json));
  }

  /** Token ids of a prompt, with the special tokens the tokenizer's post-processor adds. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /** Text of token ids (special tokens skipped). */
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids as number[], { skip_special_tokens: true });
  }

  /** Renders chat messages with the model's chat template, ready for generation. */
  applyChatTemplate(messages: ChatMessage[]): string {
    if (!this.tokenizer.chat_template) {
      throw new InvalidRequestError('this model has no chat template: use a completion prompt instead');
    }
    const text: unknown = this.tokenizer.apply_chat_template(messages, {
      tokenize: false,
      add_generation_prompt: true,
    });
    return String(text);
  }
}
