/**
 * Messages between the engine and its tokenizer worker thread. One `encode` per prompt; the
 * answer carries the token ids as a transferred Int32Array, so a 131,072-token prompt crosses
 * without a copy.
 */
import type { ChatMessage } from '../cluster/messages/params.ts';

/** What to tokenize: a prompt, or chat messages to render with the model's template first. */
export type TokenizeInput = { text: string } | { messages: ChatMessage[] };

/** Main thread → tokenizer worker. */
export type ToTokenizer =
  | { type: 'encode'; id: number; input: TokenizeInput }
  /** Fault injection (tests, chaos): the worker throws an uncaught error and dies. */
  | { type: 'crash' };

/** Tokenizer worker → main thread. */
export type FromTokenizer =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'encoded'; id: number; ids: Int32Array }
  /** The input cannot be tokenized as asked (no chat template): the caller's mistake. */
  | { type: 'refused'; id: number; message: string }
  /** The tokenizer threw on this input: a failure of this request only. */
  | { type: 'error'; id: number; message: string };
