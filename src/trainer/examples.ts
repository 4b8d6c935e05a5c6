/**
 * Training examples from an exported SFT dataset (`switchyard dataset export --format sft`): the
 * manifest's shards, checked against their sha256, each line turned into the prompt tokens the
 * engine would see and the target tokens it should produce (the completion, then the end token
 * that stops generation). A deterministic part of the prompts is held out and never trained on.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ChatMessage } from '../cluster/messages/params.ts';
import type { DatasetManifest } from '../collector/shards.ts';
import type { ModelTokenizer } from '../engine/tokenizer.ts';
import { StartupError } from '../errors/errors.ts';

/** One in this many prompts (by hash) is held out. */
export const HELDOUT_ONE_IN = 5;

/** One SFT line as the trainer uses it. */
export interface Example {
  /** What the held-out split hashes: the prompt text as the model sees it. */
  prompt: string;
  promptIds: number[];
  targetIds: number[];
}

/** The dataset as read: its lines and the sha256 of its manifest (its identity in lineage). */
export interface Dataset {
  manifestSha256: string;
  lines: unknown[];
}

function bad(file: string, why: string): StartupError {
  return new StartupError('config', `dataset ${file}: ${why}`);
}

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/** Reads an SFT export's manifest and shards (each checked against the manifest's sha256). */
export async function readSftDataset(manifestPath: string): Promise<Dataset> {
  let text: Buffer;
  try {
    text = await readFile(manifestPath);
  } catch (err) {
    throw bad(manifestPath, `cannot be read (${(err as Error).message})`);
  }
  let manifest: DatasetManifest;
  try {
    manifest = JSON.parse(text.toString('utf8')) as DatasetManifest;
  } catch {
    throw bad(manifestPath, 'is not JSON');
  }
  if (manifest.created_by !== 'switchyard' || !Array.isArray(manifest.shards))
    throw bad(manifestPath, 'is not a switchyard dataset manifest (switchyard dataset export writes one)');
  if (manifest.format !== 'sft')
    throw bad(manifestPath, `has format '${String(manifest.format)}'; the reference trainer takes sft`);
  const lines: unknown[] = [];
  for (const shard of manifest.shards) {
    const file = join(dirname(manifestPath), shard.file);
    const bytes = await readFile(file).catch((err: Error) => {
      throw bad(manifestPath, `shard ${shard.file} cannot be read (${err.message})`);
    });
    if (sha256(bytes) !== shard.sha256)
      throw bad(manifestPath, `shard ${shard.file} does not match its sha256`);
    for (const line of bytes.toString('utf8').split('\n'))
      if (line.trim() !== '') lines.push(JSON.parse(line));
  }
  return { manifestSha256: sha256(text), lines };
}

const isMessages = (v: unknown): v is ChatMessage[] =>
  Array.isArray(v) &&
  v.every(
    (m) =>
      typeof m === 'object' &&
      m !== null &&
      typeof (m as ChatMessage).role === 'string' &&
      typeof (m as ChatMessage).content === 'string',
  );

/**
 * Tokenizes one SFT line, or returns undefined for a line of another shape. A chat line's prompt
 * is its messages before the last (an assistant message) rendered with the chat template's
 * generation prompt; its target is what the template writes after that, up to and including the
 * first end token. A prompt/completion line's target is the completion and the model's first EOS.
 */
export function toExample(
  line: unknown,
  tokenizer: ModelTokenizer,
  eosTokenIds: readonly number[],
): Example | undefined {
  if (typeof line !== 'object' || line === null) return undefined;
  const l = line as { prompt?: unknown; completion?: unknown; messages?: unknown };
  let prompt: string;
  let targetIds: number[];
  if (isMessages(l.messages) && l.messages.length >= 2 && l.messages.at(-1)?.role === 'assistant') {
    prompt = tokenizer.applyChatTemplate(l.messages.slice(0, -1), true);
    const full = tokenizer.applyChatTemplate(l.messages, false);
    if (!full.startsWith(prompt)) return undefined;
    targetIds = tokenizer.encode(full.slice(prompt.length));
    const end = targetIds.findIndex((id) => eosTokenIds.includes(id));
    if (end >= 0) targetIds = targetIds.slice(0, end + 1);
    else targetIds.push(eosTokenIds[0]!);
  } else if (typeof l.prompt === 'string' && typeof l.completion === 'string') {
    prompt = l.prompt;
    targetIds = [...tokenizer.encode(l.completion), eosTokenIds[0]!];
  } else {
    return undefined;
  }
  const promptIds = tokenizer.encode(prompt);
  if (promptIds.length === 0) return undefined;
  return { prompt, promptIds, targetIds };
}

/** True for the prompts never trained on: one in {@link HELDOUT_ONE_IN}, by a hash of the prompt. */
export function isHeldOut(prompt: string): boolean {
  return createHash('sha256').update(prompt).digest().readUInt32BE(0) % HELDOUT_ONE_IN === 0;
}
